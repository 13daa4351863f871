"""Colour adjustments with torchvision's definitions: brightness, contrast, saturation, hue,
grayscale. PIL images go through ``PIL.ImageEnhance`` and Pillow's HSV mode, as torchvision
does; float Tensors (..., C, H, W) in [0, 1] use torchvision's tensor formulas:

    blend(a, b, r) = clamp(r * a + (1 - r) * b, 0, 1)
    brightness f: blend(x, 0, f);  contrast f: blend(x, mean(gray(x)), f)
    saturation f: blend(x, gray(x), f);  gray = 0.2989 R + 0.587 G + 0.114 B
    hue f: rotate the HSV hue by f (a fraction of a turn, |f| <= 0.5)
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor
from shendu.vision.transforms.functional import _array, is_pil_image

_np = backend.namespace("cpu")


def _float_image(img, who):
    data = _array(img, who)
    if not backend.is_floating(data.dtype):
        raise TypeError(f"{who}: expected a float image in [0, 1] (apply ToTensor() first), "
                        f"got dtype {data.dtype}")
    if data.ndim < 3 or data.shape[-3] not in (1, 3):
        raise ValueError(f"{who}: expected (..., C, H, W) with C = 1 or 3, got shape "
                         f"{tuple(data.shape)}")
    return data


def _blend(a, b, ratio):
    return backend.xp_of(a).clip(ratio * a + (1.0 - ratio) * b, 0.0, 1.0).astype(a.dtype)


def _gray(data):
    r, g, b = data[..., 0, :, :], data[..., 1, :, :], data[..., 2, :, :]
    return (0.2989 * r + 0.587 * g + 0.114 * b).astype(data.dtype)[..., None, :, :]


def _enhance(img, name, factor):
    from PIL import ImageEnhance
    return getattr(ImageEnhance, name)(img).enhance(factor)


def _check_factor(factor, who):
    if factor < 0:
        raise ValueError(f"{who}: the factor must be non-negative, got {factor}")


def adjust_brightness(img, brightness_factor):
    _check_factor(brightness_factor, "adjust_brightness")
    if is_pil_image(img):
        return _enhance(img, "Brightness", brightness_factor)
    data = _float_image(img, "adjust_brightness")
    return Tensor._wrap(_blend(data, 0.0, brightness_factor))


def adjust_contrast(img, contrast_factor):
    _check_factor(contrast_factor, "adjust_contrast")
    if is_pil_image(img):
        return _enhance(img, "Contrast", contrast_factor)
    data = _float_image(img, "adjust_contrast")
    gray = _gray(data) if data.shape[-3] == 3 else data
    mean = gray.mean(axis=(-3, -2, -1), keepdims=True)
    return Tensor._wrap(_blend(data, mean, contrast_factor))


def adjust_saturation(img, saturation_factor):
    _check_factor(saturation_factor, "adjust_saturation")
    if is_pil_image(img):
        return _enhance(img, "Color", saturation_factor)
    data = _float_image(img, "adjust_saturation")
    if data.shape[-3] == 1:
        return Tensor._wrap(data)
    return Tensor._wrap(_blend(data, _gray(data), saturation_factor))


def rgb_to_grayscale(img, num_output_channels=1):
    if num_output_channels not in (1, 3):
        raise ValueError(f"rgb_to_grayscale: num_output_channels must be 1 or 3, got "
                         f"{num_output_channels}")
    if is_pil_image(img):
        gray = img.convert("L")
        return gray if num_output_channels == 1 else gray.convert("RGB")
    data = _float_image(img, "rgb_to_grayscale")
    gray = _gray(data) if data.shape[-3] == 3 else data
    if num_output_channels == 3:
        gray = backend.xp_of(gray).concatenate([gray] * 3, axis=-3)
    return Tensor._wrap(gray)


def _rgb_to_hsv(data):
    xp = backend.xp_of(data)
    r, g, b = data[..., 0, :, :], data[..., 1, :, :], data[..., 2, :, :]
    maxc, minc = data.max(axis=-3), data.min(axis=-3)
    equal = maxc == minc
    chroma = maxc - minc
    ones = xp.ones_like(maxc)
    s = chroma / xp.where(equal, ones, maxc)
    divisor = xp.where(equal, ones, chroma)
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = xp.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    xp = backend.xp_of(h)
    i = xp.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.astype(backend.int64) % 6
    p = xp.clip(v * (1.0 - s), 0.0, 1.0)
    q = xp.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = xp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    table = xp.stack([xp.stack(c) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p),
                                            (p, p, t, v, v, q))])  # (3, 6, ..., H, W)
    pick = xp.take_along_axis(table, i[None, None], axis=1)[:, 0]  # (3, ..., H, W)
    return xp.moveaxis(pick, 0, -3)


def adjust_hue(img, hue_factor):
    """Shift the hue by ``hue_factor`` turns (in [-0.5, 0.5])."""
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f"adjust_hue: hue_factor ({hue_factor}) is not in [-0.5, 0.5]")
    if is_pil_image(img):
        from PIL import Image
        if img.mode in ("L", "1", "I", "F"):
            return img
        h, s, v = img.convert("HSV").split()
        shift = int(hue_factor * 255) % 256  # torchvision adds it to the uint8 hue, wrapping
        hue = ((_np.asarray(h, dtype=backend.int64) + shift) % 256).astype(backend.uint8)
        return Image.merge("HSV", (Image.fromarray(hue, "L"), s, v)).convert(img.mode)
    data = _float_image(img, "adjust_hue")
    if data.shape[-3] == 1:
        return Tensor._wrap(data)
    h, s, v = _rgb_to_hsv(data)
    h = backend.xp_of(h).fmod(h + hue_factor, 1.0)
    h = backend.xp_of(h).where(h < 0, h + 1.0, h)  # torch's % is a floor modulo
    return Tensor._wrap(_hsv_to_rgb(h, s, v).astype(data.dtype))
