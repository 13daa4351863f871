"""torchvision.transforms' classes: callables on PIL images and (..., C, H, W) Tensors.

Random transforms draw their parameters as torchvision does (one draw per call, so a batch
Tensor gets one crop / flip / angle for all its images) from the shendu Generator given as
``generator`` or else the CPU default generator, which ``shendu.manual_seed`` seeds.
"""
from __future__ import annotations

import math
import numbers

from shendu import backend
from shendu.data import transforms as _data_transforms
from shendu.vision.transforms import color as C
from shendu.vision.transforms import functional as F
from shendu.vision.transforms.functional import InterpolationMode

Compose = _data_transforms.Compose


def _gen(generator):
    return generator if generator is not None else backend.default_generator("cpu")


def _uniform(generator, low, high):
    return low + (high - low) * float(_gen(generator).random((), backend.float64))


def _randint(generator, low, high):
    """An int in [low, high)."""
    return int(_gen(generator).integers(low, high, ()))


def _size_pair(size, who):
    if isinstance(size, numbers.Number):
        return int(size), int(size)
    if isinstance(size, (list, tuple)) and len(size) == 1:
        return int(size[0]), int(size[0])
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    raise ValueError(f"{who}: size must be an int or a (h, w) pair, got {size!r}")


class ToTensor:
    """PIL image or (H, W, C) uint8 array -> (C, H, W) float32 Tensor in [0, 1]."""

    def __call__(self, pic):
        return F.to_tensor(pic)

    def __repr__(self):
        return "ToTensor()"


class PILToTensor:
    """PIL image -> (C, H, W) Tensor of the image's dtype, unscaled."""

    def __call__(self, pic):
        return F.pil_to_tensor(pic)

    def __repr__(self):
        return "PILToTensor()"


class ToPILImage:
    """(C, H, W) Tensor or (H, W, C) array -> PIL image (floats times 255, truncated)."""

    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)

    def __repr__(self):
        return f"ToPILImage(mode={self.mode})"


class Normalize(_data_transforms.Normalize):
    """(x - mean[c]) / std[c] on a float Tensor (..., C, H, W); differentiable."""

    def __init__(self, mean, std, inplace=False):
        super().__init__(mean, std)
        self.inplace = inplace

    def __call__(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)


class Lambda:
    """Wrap a function as a transform."""

    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Lambda: argument should be callable, got {type(lambd).__name__}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)

    def __repr__(self):
        return "Lambda()"


class Resize:
    """Resize to ``size`` ((h, w), or an int for the shorter edge); see functional.resize."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias=True):
        self.size, self.interpolation, self.max_size = size, interpolation, max_size
        F._mode(interpolation)

    def __call__(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size)

    def __repr__(self):
        return f"Resize(size={self.size}, interpolation={F._mode(self.interpolation)})"


class CenterCrop:
    def __init__(self, size):
        self.size = _size_pair(size, "CenterCrop")

    def __call__(self, img):
        return F.center_crop(img, self.size)

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class Pad:
    def __init__(self, padding, fill=0, padding_mode="constant"):
        F._padding(padding, "Pad")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def __call__(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)


class RandomCrop:
    """Pad (optionally), then cut a ``size`` window at a uniformly random offset."""

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant",
                 generator=None):
        self.size = _size_pair(size, "RandomCrop")
        if padding is not None:
            F._padding(padding, "RandomCrop")
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode, self.generator = fill, padding_mode, generator

    def get_params(self, img, output_size):
        _, h, w = F.get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the "
                             f"input image size {(h, w)}")
        if w == tw and h == th:
            return 0, 0, h, w
        return _randint(self.generator, 0, h - th + 1), _randint(self.generator, 0, w - tw + 1), \
            th, tw

    def __call__(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, h, w = F.get_dimensions(img)
        th, tw = self.size
        if self.pad_if_needed and w < tw:
            img = F.pad(img, [tw - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < th:
            img = F.pad(img, [0, th - h], self.fill, self.padding_mode)
        return F.crop(img, *self.get_params(img, self.size))

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomResizedCrop:
    """A random area fraction in ``scale`` with aspect ratio in ``ratio``, resized to ``size``
    (torchvision's 10 tries, then a centre crop clamped to the ratio range)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True, generator=None):
        self.size = _size_pair(size, "RandomResizedCrop")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError(f"RandomResizedCrop: scale and ratio must be (min, max), got "
                             f"scale={scale}, ratio={ratio}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.generator = interpolation, generator

    def get_params(self, img):
        _, height, width = F.get_dimensions(img)
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * _uniform(self.generator, *self.scale)
            aspect = math.exp(_uniform(self.generator, *log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return (_randint(self.generator, 0, height - h + 1),
                        _randint(self.generator, 0, width - w + 1), h, w)
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img):
        top, left, h, w = self.get_params(img)
        return F.resized_crop(img, top, left, h, w, self.size, self.interpolation)

    def __repr__(self):
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    def __init__(self, p=0.5, generator=None):
        self.p, self.generator = p, generator

    def __call__(self, img):
        return F.hflip(img) if _uniform(self.generator, 0.0, 1.0) < self.p else img

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    def __call__(self, img):
        return F.vflip(img) if _uniform(self.generator, 0.0, 1.0) < self.p else img

    def __repr__(self):
        return f"RandomVerticalFlip(p={self.p})"


class RandomRotation:
    """Rotate by an angle drawn uniformly from ``degrees`` ((min, max), or d for (-d, d))."""

    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False,
                 center=None, fill=0, generator=None):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f"RandomRotation: if degrees is a single number it must be "
                                 f"positive, got {degrees}")
            degrees = (-degrees, degrees)
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.interpolation, self.expand, self.center = interpolation, expand, center
        self.fill, self.generator = fill, generator

    def __call__(self, img):
        angle = _uniform(self.generator, *self.degrees)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center, self.fill)

    def __repr__(self):
        return f"RandomRotation(degrees={self.degrees})"


def _jitter_range(value, name, center=1.0, bound=(0, float("inf"))):
    if value is None:
        return None
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"ColorJitter: if {name} is a single number, it must be "
                             f"non negative, got {value}")
        value = [center - float(value), center + float(value)]
        if name != "hue":
            value[0] = max(value[0], 0.0)
    low, high = float(value[0]), float(value[1])
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f"ColorJitter: {name} values should be between {bound}, got "
                         f"{(low, high)}")
    return None if low == high == center else (low, high)


class ColorJitter:
    """Random brightness, contrast, saturation and hue changes, applied in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, generator=None):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=(-0.5, 0.5))
        self.generator = generator

    def get_params(self):
        """(order of the four ops, brightness, contrast, saturation, hue factors or None)."""
        order = backend.to_numpy(_gen(self.generator).permutation(4)).tolist()
        factors = [None if r is None else _uniform(self.generator, *r)
                   for r in (self.brightness, self.contrast, self.saturation, self.hue)]
        return order, *factors

    def __call__(self, img):
        order, *factors = self.get_params()
        ops = (C.adjust_brightness, C.adjust_contrast, C.adjust_saturation, C.adjust_hue)
        for k in order:
            if factors[k] is not None:
                img = ops[k](img, factors[k])
        return img

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


class Grayscale:
    def __init__(self, num_output_channels=1):
        self.num_output_channels = num_output_channels

    def __call__(self, img):
        return C.rgb_to_grayscale(img, self.num_output_channels)
