"""Synthetic detection / segmentation scenes made of MNIST or Fashion-MNIST objects (N6.1).

Each scene is a ``canvas x canvas`` grey image holding 1 to 5 objects, each a training (or
test) image cropped to its ink, rescaled so that its longer side is ``min_size..max_size``
pixels, and pasted at a random position; objects overlap by at most ``max_iou`` (box IoU) and
later ones cover earlier ones (the image is the pixelwise maximum). One generator serves the
three tasks:

- detection: ``boxes`` (n, 4) float32 xyxy in pixel-edge coordinates (the tight box of the
  object's ink) and ``labels`` (n,) int64 in 1..10 (the source class + 1; 0 is background,
  torchvision's convention);
- semantic segmentation: ``semantic`` (H, W) int64, the label of the object that owns each
  pixel, 0 elsewhere;
- instance segmentation: ``masks`` (n, H, W) bool, the pixels each object owns (its ink that
  no later object covers).

A pixel is ink when the rescaled object is brighter than ``ink_threshold``. Scenes depend only
on (source split, seed, index): scene ``i`` draws from ``Generator(seed=[seed, i])``.
"""
from __future__ import annotations

from shendu import backend
from shendu.data.dataset import Dataset, as_index_array, check_index
from shendu.tensor import Tensor

np = backend.namespace("cpu")  # scenes are generated once, on the host


def _resize_matrix(n_in, n_out):
    """(n_out, n_in) linear-interpolation weights with pixel centres aligned (half-pixel)."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, n_in - 1)
    frac = pos - low
    weights = np.zeros((n_out, n_in))
    weights[np.arange(n_out), low] += 1 - frac
    weights[np.arange(n_out), high] += frac
    return weights


def _ink_crop(image, threshold):
    rows = np.flatnonzero(image.max(axis=1) > threshold)
    cols = np.flatnonzero(image.max(axis=0) > threshold)
    if rows.size == 0:
        return image
    return image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _box_iou(box, others):
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(others) - inter)


class MNISTScenes(Dataset):
    """Scenes of 1-5 digits (or Fashion-MNIST items) for detection and segmentation.

    Args:
        source: "mnist" or "fashion-mnist".
        train: draw objects from the source's training split (else its test split), so
            held-out scenes are made of images no training scene used.
        num_scenes: how many scenes. seed: the scenes' seed.
        canvas: side of the square image. min_size, max_size: range of an object's longer side.
        min_objects, max_objects: objects per scene. max_iou: largest box IoU between objects.
        root: folder of the IDX files (see shendu.data.MNIST); Fashion-MNIST falls back to the
            shipped subset when the full set is missing.

    ``ds[i]`` is ``(image, target)``: image (1, canvas, canvas) float32 in [0, 1] and target a
    dict of Tensors ``boxes`` (n, 4), ``labels`` (n,), ``masks`` (n, H, W) bool, ``semantic``
    (H, W) int64. ``classes`` lists the names of labels 0..10 ("background" first).
    """

    def __init__(self, source="mnist", train=True, num_scenes=1000, seed=0, canvas=64,
                 min_size=14, max_size=30, min_objects=1, max_objects=5, max_iou=0.0,
                 ink_threshold=0.3, root=None):
        from shendu.data.mnist import MNIST, FashionMNIST
        if source not in ("mnist", "fashion-mnist"):
            raise ValueError(f"MNISTScenes: source must be 'mnist' or 'fashion-mnist', got "
                             f"{source!r}")
        if not 1 <= min_objects <= max_objects:
            raise ValueError(f"MNISTScenes: need 1 <= min_objects <= max_objects, got "
                             f"{min_objects}, {max_objects}")
        if not 4 <= min_size <= max_size <= canvas:
            raise ValueError(f"MNISTScenes: need 4 <= min_size <= max_size <= canvas, got "
                             f"{min_size}, {max_size}, {canvas}")
        objects = (MNIST(root, train) if source == "mnist"
                   else FashionMNIST(root, train, allow_subset=True))
        self.source, self.train, self.seed, self.canvas = source, bool(train), seed, canvas
        self.classes = ["background"] + list(objects.classes)
        self._settings = (min_size, max_size, min_objects, max_objects, max_iou, ink_threshold)
        pixels = backend.to_numpy(objects.data._data)
        labels = backend.to_numpy(objects.targets._data)
        scenes = [self._make(np.random.default_rng([seed, i]), pixels, labels)
                  for i in range(num_scenes)]
        self.images = np.stack([s[0] for s in scenes])[:, None]  # (N, 1, H, W) float32
        self.semantic = np.stack([s[1] for s in scenes])  # (N, H, W) int64
        self.boxes = [s[2] for s in scenes]
        self.labels = [s[3] for s in scenes]
        self.owner = np.stack([s[4] for s in scenes])  # (N, H, W): object index, -1 background

    def _make(self, rng, pixels, labels):
        min_size, max_size, min_objects, max_objects, max_iou, ink = self._settings
        size = self.canvas
        image = np.zeros((size, size), dtype=np.float32)
        semantic = np.zeros((size, size), dtype=np.int64)
        owner = np.full((size, size), -1, dtype=np.int64)
        boxes, classes = [], []
        wanted = int(rng.integers(min_objects, max_objects + 1))
        for _ in range(wanted * 20):  # placements that overlap too much are redrawn
            if len(boxes) == wanted:
                break
            pick = int(rng.integers(0, len(pixels)))
            crop = _ink_crop(pixels[pick].astype(np.float32) / 255, ink)
            longer = int(rng.integers(min_size, max_size + 1))
            scale = longer / max(crop.shape)
            h = max(int(round(crop.shape[0] * scale)), 2)
            w = max(int(round(crop.shape[1] * scale)), 2)
            obj = _resize_matrix(crop.shape[0], h) @ crop @ _resize_matrix(crop.shape[1], w).T
            top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            mask = obj > ink
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if rows.size == 0:
                continue
            box = np.array([left + cols[0], top + rows[0], left + cols[-1] + 1,
                            top + rows[-1] + 1], dtype=np.float32)
            if boxes and _box_iou(box, np.stack(boxes)).max() > max_iou:
                continue
            region = (slice(top, top + h), slice(left, left + w))
            image[region] = np.maximum(image[region], obj.astype(np.float32))
            semantic[region] = np.where(mask, labels[pick] + 1, semantic[region])
            owner[region] = np.where(mask, len(boxes), owner[region])
            boxes.append(box)
            classes.append(labels[pick] + 1)
        return (np.clip(image, 0, 1), semantic, np.stack(boxes).astype(np.float32),
                np.asarray(classes, dtype=np.int64), owner)

    def __len__(self):
        return self.images.shape[0]

    def target(self, index):
        """The target dict of scene ``index`` (see the class docstring)."""
        index = check_index(index, len(self), "MNISTScenes")
        n = len(self.labels[index])
        masks = self.owner[index][None] == np.arange(n)[:, None, None]
        return {"boxes": Tensor._wrap(self.boxes[index]),
                "labels": Tensor._wrap(self.labels[index]),
                "masks": Tensor._wrap(masks), "semantic": Tensor._wrap(self.semantic[index])}

    def __getitem__(self, index):
        index = check_index(index, len(self), "MNISTScenes")
        return Tensor._wrap(self.images[index]), self.target(index)

    def get_batch(self, indices):
        """((B, 1, H, W) images, list of B target dicts): one indexing call for the images."""
        idx = as_index_array(indices, len(self), "MNISTScenes.get_batch")
        return Tensor._wrap(self.images[idx]), [self.target(int(i)) for i in idx]

    def __repr__(self):
        return (f"MNISTScenes(source={self.source!r}, split={'train' if self.train else 'test'},"
                f" scenes={len(self)}, canvas={self.canvas}, seed={self.seed})")


def collate_scenes(samples):
    """DataLoader collate_fn for scene samples: stacked images and a list of target dicts."""
    from shendu.ops import stack
    return stack([image for image, _ in samples]), [target for _, target in samples]
