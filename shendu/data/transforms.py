"""Image transforms, vectorized over a batch and usable on a single sample (torchvision names).

Images are channels-first: one sample is (C, H, W) (or (H, W)), a batch is (N, C, H, W). Random
transforms draw one decision per sample from an explicit ``generator`` (default: the CPU default
generator at call time), so a batch is augmented in one call with no loop over samples and a
fixed seed gives fixed augmentations. ``RandomCrop`` and ``RandomHorizontalFlip`` move pixels
and are not recorded by autograd; ``Normalize`` is made of Tensor ops and is differentiable.
"""
from __future__ import annotations

from shendu import backend
from shendu.tensor import Tensor


def _tensor(x, who):
    if isinstance(x, Tensor):
        return x
    if backend.is_array(x):
        return Tensor._wrap(x)
    raise TypeError(f"{who}: expected a shendu.Tensor or an array, got {type(x).__name__}")


def _as_batch(x, who):
    """View a sample or batch as (N, C, H, W); returns the view and the original shape."""
    if x.ndim == 2:
        return x.reshape(1, 1, *x.shape), x.shape
    if x.ndim == 3:
        return x.reshape(1, *x.shape), x.shape
    if x.ndim == 4:
        return x, x.shape
    raise ValueError(f"{who}: expected an image (H, W), (C, H, W) or a batch (N, C, H, W), got "
                     f"shape {tuple(x.shape)}")


def _generator(generator):
    return generator if generator is not None else backend.default_generator("cpu")


def _pair(value, who, name):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"{who}: {name} must be an int or a pair of ints, got {value!r}")


class Compose:
    """Apply ``transforms`` one after another: ``Compose([ToTensor(), Normalize(m, s)])``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class ToTensor:
    """uint8 images in [0, 255] -> float32 in [0, 1]: y = x / 255; other dtypes pass unchanged.

    Unlike torchvision, the layout is not changed unless ``channels_last=True``, which moves the
    last axis to the channel position (H, W, C) -> (C, H, W), (N, H, W, C) -> (N, C, H, W).
    Applying it twice is harmless, so a dataset that already scales can still take it.

    Shape:
        any (*) -> (*) (channels_last: (..., H, W, C) -> (..., C, H, W)).
    """

    def __init__(self, channels_last=False):
        self.channels_last = bool(channels_last)

    def __call__(self, x):
        x = _tensor(x, "ToTensor")
        data = x._data
        if self.channels_last:
            if data.ndim < 3:
                raise ValueError(f"ToTensor(channels_last=True): expected (..., H, W, C), got "
                                 f"shape {tuple(data.shape)}")
            data = backend.xp_of(data).moveaxis(data, -1, -3)
        if data.dtype == backend.uint8:
            data = data.astype(backend.float32) / 255  # torchvision's x.float().div(255)
        return x if data is x._data else Tensor._wrap(data)

    def __repr__(self):
        return f"ToTensor(channels_last={self.channels_last})"


class Normalize:
    """Per-channel standardization: y[c] = (x[c] - mean[c]) / std[c].

    Args:
        mean: one value per channel (or a single value for all).
        std: one value per channel (or a single value), all non-zero.

    Shape:
        (C, H, W) or (N, C, H, W) -> same; float input, dtype kept.
    """

    def __init__(self, mean, std):
        self.mean = tuple(float(m) for m in _seq(mean))
        self.std = tuple(float(s) for s in _seq(std))
        if len(self.mean) != len(self.std):
            raise ValueError(f"Normalize: mean and std must have the same length, got "
                             f"{len(self.mean)} and {len(self.std)}")
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std}")

    def __call__(self, x):
        x = _tensor(x, "Normalize")
        if not backend.is_floating(x.dtype):
            raise TypeError(f"Normalize: expected a floating-point image, got {x.dtype}; apply "
                            "ToTensor() first")
        if x.ndim < 3 or len(self.mean) not in (1, x.shape[-3]):
            raise ValueError(f"Normalize: expected (C, H, W) or (N, C, H, W) with C = "
                             f"{len(self.mean)}, got shape {tuple(x.shape)}")
        xp = x._xp
        mean = Tensor._wrap(xp.asarray(self.mean, dtype=x.dtype).reshape(-1, 1, 1))  # (C, 1, 1)
        std = Tensor._wrap(xp.asarray(self.std, dtype=x.dtype).reshape(-1, 1, 1))
        return (x - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


def _seq(value):
    return value if isinstance(value, (tuple, list)) else (value,)


class RandomCrop:
    """Zero-pad by ``padding`` then cut a random ``size`` window, a new offset per sample.

    Args:
        size: output (h, w), or an int for a square.
        padding: int (all sides), (left/right, top/bottom) or (left, top, right, bottom).
            Default: 0.
        fill: value of the padded pixels. Default: 0.
        generator: shendu.Generator for the offsets.

    Shape:
        (C, H, W) -> (C, h, w); (N, C, H, W) -> (N, C, h, w); (H, W) -> (h, w).
    """

    def __init__(self, size, padding=0, fill=0, generator=None):
        self.size = _pair(size, "RandomCrop", "size")
        if isinstance(padding, int):
            padding = (padding,) * 4
        elif isinstance(padding, (tuple, list)) and len(padding) == 2:
            padding = (padding[0], padding[1], padding[0], padding[1])
        if not (isinstance(padding, (tuple, list)) and len(padding) == 4
                and all(isinstance(p, int) and p >= 0 for p in padding)):
            raise ValueError(f"RandomCrop: padding must be a non-negative int or a sequence of "
                             f"2 or 4 of them, got {padding!r}")
        self.padding = tuple(padding)  # (left, top, right, bottom), torchvision's order
        self.fill = fill
        self.generator = generator

    def __call__(self, x):
        x = _tensor(x, "RandomCrop")
        batch, shape = _as_batch(x._data, "RandomCrop")
        xp = backend.xp_of(batch)
        left, top, right, bottom = self.padding
        padded = xp.pad(batch, ((0, 0), (0, 0), (top, bottom), (left, right)),
                        constant_values=self.fill)
        h, w = self.size
        n, _, height, width = padded.shape
        if h > height or w > width:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded "
                             f"image ({height}, {width})")
        gen = _generator(self.generator)
        oy = backend.to_device(gen.integers(0, height - h + 1, (n,)), backend.device_of(batch))
        ox = backend.to_device(gen.integers(0, width - w + 1, (n,)), backend.device_of(batch))
        windows = backend.sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, H', W', h, w)
        out = windows[xp.arange(n), :, oy, ox]  # (N, C, h, w): one gather, no per-sample loop
        return Tensor._wrap(out.reshape(*shape[:-2], h, w))

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each sample left-right with probability ``p`` (an independent draw per sample).

    Shape:
        (C, H, W), (H, W) or (N, C, H, W) -> same.
    """

    def __init__(self, p=0.5, generator=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def __call__(self, x):
        x = _tensor(x, "RandomHorizontalFlip")
        batch, shape = _as_batch(x._data, "RandomHorizontalFlip")
        flip = _generator(self.generator).random((batch.shape[0],), backend.float64) < self.p
        flip = backend.to_device(flip, backend.device_of(batch))
        out = backend.xp_of(batch).where(flip[:, None, None, None], batch[..., ::-1], batch)
        return Tensor._wrap(out.reshape(shape))

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
