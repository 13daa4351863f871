"""shendu.vision.datasets: torchvision.datasets' counterparts, and the MNIST detection scenes."""
from shendu.vision.datasets.mnist import MNIST, FashionMNIST
from shendu.vision.datasets.scenes import MNISTScenes, collate_scenes

__all__ = ["FashionMNIST", "MNIST", "MNISTScenes", "collate_scenes"]
