"""torchvision.datasets.MNIST / FashionMNIST: ``(PIL image, int label)`` samples.

The IDX files are found and read by ``shendu.data.mnist`` (its lookup: ``root``,
``root/<name>``, ``$SHENDU_DATA``, system folders, the cache), with torchvision's own layout
``root/MNIST/raw/`` and ``root/FashionMNIST/raw/`` searched first; ``download=True`` stores the
files there, as torchvision does.
"""
from __future__ import annotations

from pathlib import Path

from shendu import backend
from shendu.data import mnist as _idx
from shendu.data.dataset import Dataset, check_index


def _located(base):
    """A subclass of the shendu.data reader that also knows torchvision's folder layout."""

    class Located(base):
        folder = base.__name__  # "MNIST" / "FashionMNIST", torchvision's folder names

        @classmethod
        def search_dirs(cls, root=None):
            dirs = super().search_dirs(root)
            return ([Path(root) / cls.folder / "raw"] if root is not None else []) + dirs

        def _download(self, directory):
            return super()._download(Path(directory) / self.folder / "raw")

    return Located


_MNISTFiles = _located(_idx.MNIST)
_FashionFiles = _located(_idx.FashionMNIST)


class MNIST(Dataset):
    """MNIST with torchvision's signature: ``MNIST(root, train=True, transform=None,
    target_transform=None, download=False)``.

    ``ds[i]`` is ``(image, target)``: a 28x28 PIL image of mode "L" (or whatever ``transform``
    makes of it, e.g. a (1, 28, 28) float Tensor with ``ToTensor()``) and an int label (or
    ``target_transform(label)``). Needs Pillow (``pip install 'shendu[image]'``).

    Attributes:
        data: uint8 Tensor (N, 28, 28). targets: int64 Tensor (N,). classes: the label names.
        root, train, transform, target_transform; source: the folder the files came from.
    """

    _files = _MNISTFiles

    def __init__(self, root, train=True, transform=None, target_transform=None,
                 download=False):
        for name, fn in (("transform", transform), ("target_transform", target_transform)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{type(self).__name__}: {name} must be callable, got "
                                f"{type(fn).__name__}")
        self.root = root
        self.train = bool(train)
        self.transform, self.target_transform = transform, target_transform
        files = self._files.__new__(self._files)
        files._load(root, train, None, download, allow_subset=False)
        self.data, self.targets, self.source = files.data, files.targets, files.source
        self.classes = list(files.classes)
        self._pixels = backend.to_numpy(self.data._data)
        self._labels = backend.to_numpy(self.targets._data)

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self):
        return self._pixels.shape[0]

    def __getitem__(self, index):
        try:
            from PIL import Image
        except ImportError:
            raise ImportError(f"{type(self).__name__} returns PIL images and needs Pillow: "
                              "pip install 'shendu[image]'") from None
        index = check_index(index, len(self), type(self).__name__)
        image = Image.fromarray(self._pixels[index], mode="L")
        target = int(self._labels[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self):
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: "
                f"{'Train' if self.train else 'Test'}")


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao et al. 2017) with torchvision's signature; see MNIST."""

    _files = _FashionFiles
