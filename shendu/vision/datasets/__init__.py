"""shendu.vision.datasets: torchvision.datasets' counterparts."""
from shendu.vision.datasets.mnist import MNIST, FashionMNIST

__all__ = ["FashionMNIST", "MNIST"]
