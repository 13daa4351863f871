"""shendu.vision.transforms: torchvision.transforms' common transforms (``from shendu.vision
import transforms``) on PIL images and Tensors; ``transforms.functional`` holds the functions.
"""
from shendu.vision.transforms import functional
from shendu.vision.transforms.color import (adjust_brightness, adjust_contrast, adjust_hue,
                                            adjust_saturation, rgb_to_grayscale)
from shendu.vision.transforms.functional import InterpolationMode
from shendu.vision.transforms.transforms import (CenterCrop, ColorJitter, Compose, Grayscale,
                                                 Lambda, Normalize, Pad, PILToTensor,
                                                 RandomCrop, RandomHorizontalFlip,
                                                 RandomResizedCrop, RandomRotation,
                                                 RandomVerticalFlip, Resize, ToPILImage,
                                                 ToTensor)

__all__ = ["CenterCrop", "ColorJitter", "Compose", "Grayscale", "InterpolationMode", "Lambda",
           "Normalize", "PILToTensor", "Pad", "RandomCrop", "RandomHorizontalFlip",
           "RandomResizedCrop", "RandomRotation", "RandomVerticalFlip", "Resize", "ToPILImage",
           "ToTensor", "functional"]
