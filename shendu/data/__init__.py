"""Data: datasets, the DataLoader, image transforms, MNIST / Fashion-MNIST and character text.

Names follow ``torch.utils.data`` and ``torchvision``: ``Dataset``, ``TensorDataset``,
``Subset``, ``ConcatDataset``, ``random_split``, ``DataLoader``, ``default_collate``,
``MNIST``, ``FashionMNIST``; ``shendu.data.transforms`` holds the transforms.
"""
from shendu.data import transforms
from shendu.data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from shendu.data.loader import DataLoader, default_collate
from shendu.data.mnist import MNIST, FashionMNIST, load_fashion_mnist, read_idx
from shendu.data.text import (CharVocab, SequenceBatches, default_text_path, load_text,
                              train_val_split)

__all__ = ["CharVocab", "ConcatDataset", "DataLoader", "Dataset", "FashionMNIST", "MNIST",
           "SequenceBatches", "Subset", "TensorDataset", "default_collate", "default_text_path",
           "load_fashion_mnist", "load_text", "random_split", "read_idx", "train_val_split",
           "transforms"]
