"""torchvision.transforms.functional's common operations, on PIL images and on Tensors.

PIL images go through Pillow exactly as torchvision does (``img.resize``, ``img.rotate``,
``ImageEnhance``). Tensors are channels-first ``(..., C, H, W)`` floats in [0, 1] (or any
dtype where the op allows), processed with array ops over all leading dims at once:
``resize`` builds Pillow's antialiased resampling weights as two matrices (one per axis),
``rotate`` gathers through Pillow's inverse affine map, and the colour ops use torchvision's
tensor formulas. Needs Pillow for PIL input: ``pip install 'shendu[image]'``.
"""
from __future__ import annotations

import math
from enum import Enum

from shendu import backend
from shendu.tensor import Tensor

_np = backend.namespace("cpu")


class InterpolationMode(Enum):
    """torchvision's interpolation names."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("shendu.vision.transforms needs Pillow for PIL images: pip install "
                          "'shendu[image]'") from None
    return Image


def is_pil_image(img) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(img, Image.Image)


def _array(img, who):
    """The xp array of a Tensor image (..., C, H, W), checking its rank."""
    if isinstance(img, Tensor):
        data = img._data
    elif backend.is_array(img):
        data = img
    else:
        raise TypeError(f"{who}: expected a PIL image or a Tensor, got {type(img).__name__}")
    if data.ndim < 2:
        raise ValueError(f"{who}: expected an image (..., H, W), got shape {tuple(data.shape)}")
    return data


def get_dimensions(img):
    """[channels, height, width] of a PIL image or a Tensor."""
    if is_pil_image(img):
        return [len(img.getbands()), img.height, img.width]
    data = _array(img, "get_dimensions")
    return [1 if data.ndim == 2 else data.shape[-3], data.shape[-2], data.shape[-1]]


# --- conversion -----------------------------------------------------------------------------

def to_tensor(pic) -> Tensor:
    """PIL image or (H, W[, C]) array -> (C, H, W) Tensor; uint8 scales to float32 in [0, 1]."""
    if is_pil_image(pic):
        array = _np.array(pic, copy=True)
        if pic.mode == "1":
            array = array.astype(backend.uint8) * 255
    elif backend.is_array(pic):
        array = pic
    else:
        raise TypeError(f"to_tensor: pic should be a PIL Image or an ndarray, got "
                        f"{type(pic).__name__}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"to_tensor: expected an image of shape (H, W) or (H, W, C), got "
                         f"{tuple(array.shape)}")
    xp = backend.xp_of(array)
    chw = xp.ascontiguousarray(array.transpose(2, 0, 1))
    if chw.dtype == backend.uint8:
        chw = chw.astype(backend.default_float) / 255
    return Tensor._wrap(chw)


def pil_to_tensor(pic) -> Tensor:
    """PIL image -> (C, H, W) Tensor of its own dtype, unscaled."""
    if not is_pil_image(pic):
        raise TypeError(f"pil_to_tensor: expected a PIL Image, got {type(pic).__name__}")
    array = _np.array(pic, copy=True)
    array = array[:, :, None] if array.ndim == 2 else array
    return Tensor._wrap(_np.ascontiguousarray(array.transpose(2, 0, 1)))


def to_pil_image(pic, mode=None):
    """(C, H, W) Tensor or (H, W, C) array -> PIL image; floats are ``x * 255`` truncated to
    uint8, as torchvision does. 1, 3 and 4 channels give modes L, RGB and RGBA."""
    image = _pil()
    if isinstance(pic, Tensor):
        array = backend.to_numpy(pic._data)
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
    elif backend.is_array(pic):
        array = backend.to_numpy(pic)
    else:
        raise TypeError(f"to_pil_image: expected a Tensor or an ndarray, got "
                        f"{type(pic).__name__}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"to_pil_image: expected 1 to 4 channels, got shape {array.shape}")
    if backend.is_floating(array.dtype) and mode != "F":
        array = (array * 255).astype(backend.uint8)
    if array.shape[2] == 1:
        return image.fromarray(array[:, :, 0], mode=mode)
    return image.fromarray(array, mode=mode)


def normalize(tensor, mean, std, inplace=False) -> Tensor:
    """(x - mean[c]) / std[c] over the channel axis of a float (..., C, H, W) Tensor."""
    from shendu.data.transforms import Normalize
    if not isinstance(tensor, Tensor):
        raise TypeError(f"normalize: expected a Tensor (apply ToTensor() first), got "
                        f"{type(tensor).__name__}")
    out = Normalize(mean, std)(tensor)
    if inplace:
        tensor._data[...] = out._data
        return tensor
    return out


# --- geometry -------------------------------------------------------------------------------

def _output_size(size, height, width, max_size, who):
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    if isinstance(size, int):
        short, long = min(height, width), max(height, width)
        new_short, new_long = size, int(size * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
        return (new_short, new_long) if height <= width else (new_long, new_short)
    if isinstance(size, (list, tuple)) and len(size) == 2:
        if max_size is not None:
            raise ValueError(f"{who}: max_size is only allowed with an int size, got {size}")
        return int(size[0]), int(size[1])
    raise TypeError(f"{who}: size must be an int or a (h, w) pair, got {size!r}")


def _pil_filter(kind):
    if kind == "bilinear":
        return 1.0, lambda x: _np.maximum(0.0, 1.0 - _np.abs(x))

    def bicubic(x, a=-0.5):  # Pillow's bicubic kernel
        x = _np.abs(x)
        near = ((a + 2) * x - (a + 3)) * x * x + 1
        far = (((x - 5) * x + 8) * x - 4) * a
        return _np.where(x < 1, near, _np.where(x < 2, far, 0.0))
    return 2.0, bicubic


def resample_matrix(size_in: int, size_out: int, kind: str):
    """(size_out, size_in) weights of Pillow's resampling along one axis (antialiased)."""
    if kind == "nearest":  # torch's nearest: source index floor(i * in / out)
        src = _np.floor(_np.arange(size_out) * (size_in / size_out)).astype(backend.int64)
        weights = _np.zeros((size_out, size_in))
        weights[_np.arange(size_out), _np.minimum(src, size_in - 1)] = 1.0
        return weights
    support, kernel = _pil_filter(kind)
    scale = size_in / size_out
    filter_scale = max(scale, 1.0)
    support *= filter_scale
    center = (_np.arange(size_out) + 0.5) * scale
    lo = _np.maximum((center - support + 0.5).astype(backend.int64), 0)
    hi = _np.minimum((center + support + 0.5).astype(backend.int64), size_in)
    j = _np.arange(size_in)
    weights = kernel((j[None, :] - center[:, None] + 0.5) / filter_scale)
    weights = _np.where((j[None, :] >= lo[:, None]) & (j[None, :] < hi[:, None]), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    return weights / _np.where(total == 0, 1.0, total)


def _mode(interpolation):
    if isinstance(interpolation, InterpolationMode):
        return interpolation.value
    if interpolation in ("nearest", "bilinear", "bicubic"):
        return interpolation
    raise ValueError(f"expected an InterpolationMode (NEAREST, BILINEAR, BICUBIC), got "
                     f"{interpolation!r}")


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    """Resize to ``size`` ((h, w), or an int for the shorter edge, keeping the aspect ratio)."""
    kind = _mode(interpolation)
    _, height, width = get_dimensions(img)
    out_h, out_w = _output_size(size, height, width, max_size, "resize")
    if is_pil_image(img):
        image = _pil()
        filters = {"nearest": image.NEAREST, "bilinear": image.BILINEAR,
                   "bicubic": image.BICUBIC}
        return img.resize((out_w, out_h), filters[kind])
    data = _array(img, "resize")
    xp = backend.xp_of(data)
    compute = data.dtype if backend.is_floating(data.dtype) else backend.float32
    rows = xp.asarray(resample_matrix(height, out_h, kind), dtype=compute)  # (h', H)
    cols = xp.asarray(resample_matrix(width, out_w, kind), dtype=compute)   # (w', W)
    out = xp.matmul(xp.matmul(rows, data.astype(compute)), cols.T)
    if not backend.is_floating(data.dtype):
        info = _np.iinfo(data.dtype)
        out = xp.clip(xp.round(out), info.min, info.max).astype(data.dtype)
    return Tensor._wrap(out)


def crop(img, top: int, left: int, height: int, width: int):
    """The window [top, top + height) x [left, left + width); outside the image is zero."""
    if is_pil_image(img):
        return img.crop((left, top, left + width, top + height))
    data = _array(img, "crop")
    _, h, w = get_dimensions(img)
    if top < 0 or left < 0 or top + height > h or left + width > w:
        pad_spec = [max(-left, 0), max(-top, 0), max(left + width - w, 0),
                    max(top + height - h, 0)]
        data = pad(Tensor._wrap(data), pad_spec)._data
        top, left = max(top, 0), max(left, 0)
    return Tensor._wrap(data[..., top:top + height, left:left + width].copy())


def center_crop(img, output_size):
    """The centred window of ``output_size`` (zero-padded first if the image is smaller)."""
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    elif isinstance(output_size, (list, tuple)) and len(output_size) == 1:
        output_size = (output_size[0], output_size[0])
    crop_h, crop_w = output_size
    _, h, w = get_dimensions(img)
    if crop_w > w or crop_h > h:
        padding = [(crop_w - w) // 2 if crop_w > w else 0, (crop_h - h) // 2 if crop_h > h else 0,
                   (crop_w - w + 1) // 2 if crop_w > w else 0,
                   (crop_h - h + 1) // 2 if crop_h > h else 0]
        img = pad(img, padding)
        _, h, w = get_dimensions(img)
        if crop_w == w and crop_h == h:
            return img
    return crop(img, int(round((h - crop_h) / 2.0)), int(round((w - crop_w) / 2.0)),
                crop_h, crop_w)


def resized_crop(img, top, left, height, width, size, interpolation=InterpolationMode.BILINEAR,
                 antialias=True):
    return resize(crop(img, top, left, height, width), size, interpolation)


def _padding(padding, who):
    if isinstance(padding, int):
        return [padding] * 4
    if isinstance(padding, (list, tuple)) and len(padding) in (1, 2, 4):
        if len(padding) == 1:
            return list(padding) * 4
        if len(padding) == 2:
            return [padding[0], padding[1], padding[0], padding[1]]
        return list(padding)
    raise ValueError(f"{who}: padding must be an int or a sequence of 1, 2 or 4 ints, got "
                     f"{padding!r}")


def pad(img, padding, fill=0, padding_mode="constant"):
    """Pad (left, top, right, bottom); modes constant, edge, reflect, symmetric."""
    left, top, right, bottom = _padding(padding, "pad")
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError(f"pad: padding_mode must be constant, edge, reflect or symmetric, got "
                         f"{padding_mode!r}")
    if is_pil_image(img):
        array = _np.asarray(img)
        spec = ((top, bottom), (left, right)) + (((0, 0),) if array.ndim == 3 else ())
        kwargs = {"constant_values": fill} if padding_mode == "constant" else {}
        out = _np.pad(array, spec, mode=padding_mode, **kwargs)
        return _pil().fromarray(out, mode=img.mode)
    data = _array(img, "pad")
    spec = [(0, 0)] * (data.ndim - 2) + [(top, bottom), (left, right)]
    kwargs = {"constant_values": fill} if padding_mode == "constant" else {}
    return Tensor._wrap(backend.xp_of(data).pad(data, spec, mode=padding_mode, **kwargs))


def hflip(img):
    if is_pil_image(img):
        return img.transpose(_pil().FLIP_LEFT_RIGHT)
    return Tensor._wrap(_array(img, "hflip")[..., ::-1].copy())


def vflip(img):
    if is_pil_image(img):
        return img.transpose(_pil().FLIP_TOP_BOTTOM)
    return Tensor._wrap(_array(img, "vflip")[..., ::-1, :].copy())


def _rotation_matrix(angle, cx, cy):
    """Pillow's inverse map for rotate(): output pixel centre -> input coordinates."""
    theta = -math.radians(angle % 360)
    a, b = round(math.cos(theta), 15), round(math.sin(theta), 15)
    d, e = round(-math.sin(theta), 15), round(math.cos(theta), 15)
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy
    return a, b, c, d, e, f


def rotate(img, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None,
           fill=0):
    """Rotate counter-clockwise by ``angle`` degrees about ``center`` (default: the middle).

    Tensors: nearest or bilinear sampling through Pillow's inverse map; pixels from outside the
    image get ``fill``; ``expand`` (grow to hold the whole rotated image) is for PIL images.
    """
    kind = _mode(interpolation)
    if is_pil_image(img):
        image = _pil()
        filters = {"nearest": image.NEAREST, "bilinear": image.BILINEAR,
                   "bicubic": image.BICUBIC}
        fillcolor = fill if not isinstance(fill, (list, tuple)) else tuple(fill)
        return img.rotate(angle, filters[kind], expand, center, fillcolor=fillcolor)
    if expand:
        raise ValueError("rotate: expand=True is supported for PIL images only; convert with "
                         "to_pil_image() first or crop the tensor afterwards")
    if kind == "bicubic":
        raise ValueError("rotate: tensors support NEAREST and BILINEAR interpolation")
    data = _array(img, "rotate")
    xp = backend.xp_of(data)
    h, w = data.shape[-2:]
    cx, cy = (w * 0.5, h * 0.5) if center is None else (float(center[0]), float(center[1]))
    a, b, c, d, e, f = _rotation_matrix(angle, cx, cy)
    ys, xs = xp.meshgrid(xp.arange(h) + 0.5, xp.arange(w) + 0.5, indexing="ij")
    src_x, src_y = a * xs + b * ys + c, d * xs + e * ys + f
    if kind == "nearest":
        ix, iy = xp.floor(src_x).astype(backend.int64), xp.floor(src_y).astype(backend.int64)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        out = data[..., xp.clip(iy, 0, h - 1), xp.clip(ix, 0, w - 1)]
        return Tensor._wrap(xp.where(inside, out, xp.asarray(fill, dtype=data.dtype)))
    x0, y0 = xp.floor(src_x - 0.5), xp.floor(src_y - 0.5)
    fx, fy = (src_x - 0.5 - x0).astype(data.dtype), (src_y - 0.5 - y0).astype(data.dtype)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            ix, iy = (x0 + dx).astype(backend.int64), (y0 + dy).astype(backend.int64)
            inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
            sample = data[..., xp.clip(iy, 0, h - 1), xp.clip(ix, 0, w - 1)]
            out = out + wy * wx * xp.where(inside, sample, xp.asarray(fill, dtype=data.dtype))
    return Tensor._wrap(out.astype(data.dtype))


# torchvision keeps the colour functions in transforms.functional too
from shendu.vision.transforms.color import (adjust_brightness, adjust_contrast,  # noqa: E402,F401
                                            adjust_hue, adjust_saturation, rgb_to_grayscale)
