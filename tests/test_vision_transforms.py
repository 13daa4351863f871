"""shendu.vision.transforms against torchvision's definitions, re-stated with PIL and torch
(torchvision itself cannot be installed next to this torch)."""
import colorsys
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from PIL import Image, ImageEnhance

import shendu
from shendu.vision import transforms as T
from shendu.vision.transforms import functional as F


def rgb_image(h=37, w=53, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3),
                                                                dtype=np.uint8))


def float_image(c=3, h=29, w=41, seed=0, batch=()):
    return np.random.default_rng(seed).random((*batch, c, h, w))


def test_to_tensor_on_pil_and_hwc_arrays_is_chw_in_unit_range():
    pil = rgb_image()
    expected = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float().div(255)
    out = T.ToTensor()(pil)
    assert out.dtype == shendu.float32 and out.shape == (3, 37, 53)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    grey = pil.convert("L")
    np.testing.assert_array_equal(T.ToTensor()(grey).numpy(),
                                  torch.from_numpy(np.array(grey))[None].float().div(255))
    hwc = np.array(pil)
    np.testing.assert_array_equal(T.ToTensor()(hwc).numpy(), expected.numpy())
    floats = np.random.default_rng(1).random((5, 6, 2))  # not uint8: layout only, no scaling
    np.testing.assert_array_equal(T.ToTensor()(floats).numpy(), floats.transpose(2, 0, 1))
    np.testing.assert_array_equal(T.PILToTensor()(pil).numpy(), np.array(pil).transpose(2, 0, 1))
    with pytest.raises(TypeError, match="PIL Image or an ndarray"):
        T.ToTensor()([1, 2])


def test_to_pil_image_truncates_like_torchvision_and_round_trips():
    x = float_image()
    pil = T.ToPILImage()(shendu.tensor(x))
    assert pil.mode == "RGB" and pil.size == (41, 29)
    expected = (torch.from_numpy(x) * 255).byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.array(pil), expected)
    assert T.ToPILImage()(shendu.tensor(x[:1])).mode == "L"
    u8 = rgb_image()
    assert np.array_equal(np.array(T.ToPILImage()(T.PILToTensor()(u8).numpy().transpose(1, 2, 0))),
                          np.array(u8))


def test_normalize_matches_torch_and_refuses_pil():
    x = float_image(batch=(2,))
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]
    m, s = (torch.tensor(v, dtype=torch.float64)[:, None, None] for v in (mean, std))
    ref = (torch.from_numpy(x) - m) / s
    np.testing.assert_allclose(T.Normalize(mean, std)(shendu.tensor(x)).numpy(), ref.numpy(),
                               rtol=1e-12)
    with pytest.raises(TypeError, match="ToTensor"):
        T.Normalize(mean, std)(rgb_image())


@pytest.mark.parametrize("size, expected", [(20, (20, 28)), ((10, 70), (10, 70)), ([16], (16, 22))])
def test_resize_sizes_follow_torchvision(size, expected):
    pil = rgb_image()  # 37 x 53: the shorter edge becomes `size`, the other int(size * 53 / 37)
    assert F.get_dimensions(T.Resize(size)(pil))[1:] == list(expected)
    assert tuple(T.Resize(size)(T.ToTensor()(pil)).shape[1:]) == expected
    assert F.get_dimensions(T.Resize(20, max_size=25)(pil))[1:] == [int(25 * 20 / 28), 25]


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("out", [(13, 17), (60, 90), (29, 100)])
def test_tensor_resize_matches_pillow_and_torch_antialias(mode, out):
    x = float_image(batch=(2,)).astype(np.float32)
    ours = F.resize(shendu.tensor(x), list(out), getattr(T.InterpolationMode, mode.upper())).numpy()
    pil_filter = Image.BILINEAR if mode == "bilinear" else Image.BICUBIC
    for b in range(2):
        for c in range(3):
            ref = Image.fromarray(x[b, c], mode="F").resize(out[::-1], pil_filter)
            np.testing.assert_allclose(ours[b, c], np.asarray(ref), atol=2e-5)
    if mode == "bilinear":  # torch's antialiased interpolate was made to match Pillow
        ref = TF.interpolate(torch.from_numpy(x), size=out, mode=mode, antialias=True,
                             align_corners=False)
        np.testing.assert_allclose(ours, ref.numpy(), atol=2e-5)


def test_tensor_resize_nearest_matches_torch_and_uint8_stays_uint8():
    x = float_image()
    ours = F.resize(shendu.tensor(x), [11, 70], T.InterpolationMode.NEAREST).numpy()
    ref = TF.interpolate(torch.from_numpy(x)[None], size=(11, 70), mode="nearest")[0]
    np.testing.assert_array_equal(ours, ref.numpy())
    u8 = T.PILToTensor()(rgb_image())
    out = T.Resize(20)(u8)
    assert out.dtype == shendu.uint8 and out.shape == (3, 20, 28)


@pytest.mark.parametrize("size", [10, (7, 30), (40, 60)])
def test_center_crop_matches_torchvision_rule(size):
    x = shendu.tensor(float_image(h=29, w=41))
    th, tw = (size, size) if isinstance(size, int) else size
    out = T.CenterCrop(size)(x).numpy()
    assert out.shape == (3, th, tw)
    padded = np.pad(x.numpy(), ((0, 0), ((max(th - 29, 0)) // 2, (max(th - 29, 0) + 1) // 2),
                                ((max(tw - 41, 0)) // 2, (max(tw - 41, 0) + 1) // 2)))
    h, w = padded.shape[1:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    np.testing.assert_array_equal(out, padded[:, top:top + th, left:left + tw])
    pil = T.CenterCrop(size)(rgb_image(29, 41))
    assert pil.size == (tw, th)


def _window_offsets(out, padded):
    """All (i, j) where ``out`` is the window of ``padded`` at that offset."""
    h, w = out.shape[-2:]
    return [(i, j) for i in range(padded.shape[-2] - h + 1) for j in range(padded.shape[-1] - w + 1)
            if np.array_equal(padded[..., i:i + h, j:j + w], out)]


def test_random_crop_is_a_window_of_the_padded_image_with_uniform_offsets():
    x = float_image(h=10, w=12)
    crop = T.RandomCrop(8, padding=2, generator=shendu.Generator().manual_seed(0))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    seen = []
    for _ in range(300):
        offsets = _window_offsets(crop(shendu.tensor(x)).numpy(), padded)
        assert len(offsets) == 1
        seen.append(offsets[0])
    rows = np.bincount([i for i, _ in seen], minlength=7)
    assert rows.min() > 15 and rows.max() < 70  # 7 offsets, ~43 each
    a = T.RandomCrop(8, padding=2, generator=shendu.Generator().manual_seed(4))(shendu.tensor(x))
    b = T.RandomCrop(8, padding=2, generator=shendu.Generator().manual_seed(4))(shendu.tensor(x))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    reflect = T.RandomCrop(14, padding=2, padding_mode="reflect")(shendu.tensor(x)).numpy()
    assert _window_offsets(reflect, np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="reflect"))
    assert T.RandomCrop(16, pad_if_needed=True)(rgb_image(10, 12)).size == (16, 16)
    with pytest.raises(ValueError, match="larger than the input image"):
        T.RandomCrop(20)(shendu.tensor(x))


def test_random_resized_crop_params_obey_scale_and_ratio():
    t = T.RandomResizedCrop(24, scale=(0.2, 0.9), ratio=(0.5, 2.0),
                            generator=shendu.Generator().manual_seed(1))
    img = shendu.tensor(float_image(h=60, w=80))
    for _ in range(200):
        top, left, h, w = t.get_params(img)
        assert 0 <= top <= 60 - h and 0 <= left <= 80 - w
        # w and h are rounded from the drawn area and ratio: allow the rounding
        assert 0.2 * 4800 - (h + w + 1) <= h * w <= 0.9 * 4800 + (h + w + 1)
        assert 0.5 * (h - 0.5) / (h + 0.5) - 0.05 <= w / h <= 2.0 * (h + 0.5) / (h - 0.5) + 0.05
    assert t(img).shape == (3, 24, 24) and t(rgb_image()).size == (24, 24)
    # the fallback when no draw fits: a centre crop at the clamped ratio
    thin = T.RandomResizedCrop(5, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert thin.get_params(shendu.zeros(1, 10, 40)) == (0, 15, 10, 10)


def test_random_flips_follow_p_and_flip_like_torch():
    x = float_image()
    flip = T.RandomHorizontalFlip(p=0.3, generator=shendu.Generator().manual_seed(2))
    outcomes = [flip(shendu.tensor(x)).numpy() for _ in range(400)]
    flipped = [np.array_equal(o, torch.from_numpy(x).flip(-1).numpy()) for o in outcomes]
    assert all(f or np.array_equal(o, x) for f, o in zip(flipped, outcomes))
    assert 0.22 < np.mean(flipped) < 0.38
    pil = rgb_image()
    assert np.array_equal(np.array(T.RandomHorizontalFlip(p=1.0)(pil)), np.array(pil)[:, ::-1])
    assert np.array_equal(T.RandomVerticalFlip(p=1.0)(shendu.tensor(x)).numpy(), x[:, ::-1])


@pytest.mark.parametrize("angle", [90.0, 33.3, -71.0])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_tensor_rotation_matches_pillow(angle, mode):
    x = float_image(c=1, h=30, w=40).astype(np.float32)
    ours = F.rotate(shendu.tensor(x), angle, getattr(T.InterpolationMode, mode.upper())).numpy()
    ref = np.asarray(Image.fromarray(x[0], mode="F").rotate(
        angle, Image.NEAREST if mode == "nearest" else Image.BILINEAR))
    close = np.isclose(ours[0], ref, atol=1e-5)
    # exact ties of the sampling grid, and (bilinear) pixels with neighbours outside the image,
    # which Pillow treats its own way, differ on the border
    assert close.mean() > (0.999 if mode == "nearest" else 0.9), close.mean()
    # away from the rotated image's edges the two agree everywhere
    inside = F.rotate(shendu.ones(1, 30, 40), angle).numpy()[0] > 0
    for axis in (0, 1):
        for shift in (-2, -1, 1, 2):
            inside &= np.roll(inside, shift, axis=axis)
    inside[:2], inside[-2:], inside[:, :2], inside[:, -2:] = False, False, False, False
    assert inside.sum() > 300 and close[inside].mean() >= (0.998 if mode == "nearest" else 1.0)


def test_random_rotation_angles_are_uniform_in_range_and_seeded():
    rot = T.RandomRotation((10, 30), generator=shendu.Generator().manual_seed(0))
    seen = []
    for _ in range(200):
        before = rot.generator.get_state()
        angle = 10 + 20 * float(rot.generator.random((), np.float64))
        rot.generator.set_state(before)
        out = rot(shendu.tensor(float_image(c=1)))
        np.testing.assert_array_equal(out.numpy(), F.rotate(shendu.tensor(float_image(c=1)),
                                                            angle).numpy())
        seen.append(angle)
    assert 10 <= min(seen) < 12 and 28 < max(seen) <= 30
    assert T.RandomRotation(45)(rgb_image()).size == (53, 37)


def _torch_blend(a, b, r):
    return (r * a + (1 - r) * b).clamp(0, 1)


def _torch_gray(x):
    return (0.2989 * x[..., 0, :, :] + 0.587 * x[..., 1, :, :] + 0.114 * x[..., 2, :, :])[
        ..., None, :, :]


@pytest.mark.parametrize("factor", [0.0, 0.4, 1.0, 1.7])
def test_brightness_contrast_saturation_match_torchvision_formulas(factor):
    x = float_image(batch=(2,))
    t = torch.from_numpy(x)
    ours = shendu.tensor(x)
    np.testing.assert_allclose(F.adjust_brightness(ours, factor).numpy(),
                               _torch_blend(t, torch.zeros_like(t), factor).numpy(), rtol=1e-12)
    mean = _torch_gray(t).mean(dim=(-3, -2, -1), keepdim=True)
    np.testing.assert_allclose(F.adjust_contrast(ours, factor).numpy(),
                               _torch_blend(t, mean, factor).numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.adjust_saturation(ours, factor).numpy(),
                               _torch_blend(t, _torch_gray(t), factor).numpy(), rtol=1e-12)
    pil = rgb_image()
    for ours_fn, name in ((F.adjust_brightness, "Brightness"), (F.adjust_contrast, "Contrast"),
                          (F.adjust_saturation, "Color")):
        assert np.array_equal(np.array(ours_fn(pil, factor)),
                              np.array(getattr(ImageEnhance, name)(pil).enhance(factor)))


@pytest.mark.parametrize("hue", [-0.5, -0.21, 0.0, 0.13, 0.5])
def test_adjust_hue_matches_colorsys(hue):
    x = float_image(h=6, w=7)
    x[:, 0, 0] = 0.5  # a grey pixel: hue undefined, kept
    ours = F.adjust_hue(shendu.tensor(x), hue).numpy()
    ref = np.empty_like(x)
    for i in range(6):
        for j in range(7):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j])
            ref[:, i, j] = colorsys.hsv_to_rgb((h + hue) % 1.0, s, v)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    out = F.adjust_hue(rgb_image(), hue)
    assert out.mode == "RGB" and out.size == (53, 37)
    with pytest.raises(ValueError, match="not in"):
        F.adjust_hue(shendu.tensor(x), 0.6)


def test_color_jitter_draws_factors_in_range_in_a_random_order():
    jitter = T.ColorJitter(brightness=0.4, contrast=(0.5, 0.9), saturation=0.2, hue=0.1,
                           generator=shendu.Generator().manual_seed(3))
    assert jitter.brightness == (0.6, 1.4) and jitter.hue == (-0.1, 0.1)
    orders = set()
    for _ in range(100):
        order, b, c, s, h = jitter.get_params()
        assert sorted(order) == [0, 1, 2, 3]
        orders.add(tuple(order))
        assert 0.6 <= b <= 1.4 and 0.5 <= c <= 0.9 and 0.8 <= s <= 1.2 and -0.1 <= h <= 0.1
    assert len(orders) > 10
    # the transform applies exactly those factors in that order
    x = shendu.tensor(float_image())
    state = jitter.generator.get_state()
    order, *factors = jitter.get_params()
    jitter.generator.set_state(state)
    expected = x
    fns = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
    for k in order:
        expected = fns[k](expected, factors[k])
    np.testing.assert_array_equal(jitter(x).numpy(), expected.numpy())
    assert T.ColorJitter(0.3, 0.3, 0.3, 0.05)(rgb_image()).size == (53, 37)
    with pytest.raises(ValueError, match="hue values should be between"):
        T.ColorJitter(hue=0.7)


def test_compose_lambda_and_a_typical_pipeline():
    pipeline = T.Compose([T.RandomResizedCrop(32), T.RandomHorizontalFlip(),
                          T.ColorJitter(0.2, 0.2, 0.2), T.ToTensor(),
                          T.Lambda(lambda t: t * 2 - 1)])
    out = pipeline(rgb_image())
    assert out.shape == (3, 32, 32) and out.dtype == shendu.float32
    assert -1.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert math.isclose(float(T.Lambda(lambda t: t + 1)(shendu.zeros(1)).sum()), 1.0)
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)
