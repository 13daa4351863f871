"""Training and evaluation loops for the detection and segmentation models (N6.1).

Detection models follow torchvision's protocol (training: ``model(images, targets)`` -> loss
dict; eval: ``model(images)`` -> list of detection dicts), so one loop serves R-CNN, Fast
R-CNN, Faster R-CNN and Mask R-CNN. Times are reported as wall-clock and as process CPU
seconds (``time.process_time``), since a shared machine stretches the first but not the second.
"""
from __future__ import annotations

import time

from shendu import backend, no_grad, optim
from shendu.nn import functional as F
from shendu.optim.lr_scheduler import OneCycleLR
from shendu.tensor import Tensor

np = backend.namespace("cpu")


class Clock:
    """Accumulates wall and CPU seconds over ``with clock:`` blocks."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c
        return False


def _progress(total, desc, enabled):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def needs_fixed_proposals(model):
    from shendu.vision.detection import FasterRCNN
    return not isinstance(model, FasterRCNN)


def compute_proposals(dataset, batch_size=256):
    """Grouped-component proposals of every scene (list of (P_i, 4) Tensors) and the Clock."""
    from shendu.vision.detection.proposals import grouped_component_proposals
    out, clock = [], Clock()
    with clock:
        for start in range(0, len(dataset), batch_size):
            out += grouped_component_proposals(dataset.images[start:start + batch_size])
    return out, clock


def fit(model, train_set, loss_fn, epochs=5, batch_size=8, lr=1e-3, seed=0, time_limit=None,
        log=print, progress=True, on_epoch_end=None):
    """Adam with a one-cycle learning rate over ``epochs`` shuffled passes;
    ``loss_fn(model, images, targets, indices)``
    returns a dict of losses (summed for the step). Stops early after ``time_limit`` seconds.

    Returns {'epochs', 'steps', 'wall', 'cpu', 'images', 'history': [mean losses per epoch]}.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.Adam(params, lr=lr)
    n = len(train_set)
    steps_per_epoch = -(-n // batch_size)
    schedule = OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    rng = np.random.default_rng(seed)
    clock, history, steps, images = Clock(), [], 0, 0
    model.train()
    for epoch in range(epochs):
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress)
        order, sums = rng.permutation(n), {}
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            with clock:
                x, targets = train_set.get_batch(idx)
                losses = loss_fn(model, x, targets, idx)
                total = sum(losses.values())
                optimizer.zero_grad()
                total.backward()
                optimizer.step()
                schedule.step()
            steps, images = steps + 1, images + len(idx)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.item()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total.item():.3f}")
            if time_limit is not None and clock.wall > time_limit:
                break
        if bar is not None:
            bar.close()
        done = start // batch_size + 1
        history.append({k: v / done for k, v in sums.items()})
        log(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in history[-1].items())
            + f" ({clock.wall:.0f} s wall, {clock.cpu:.0f} s CPU so far)")
        if on_epoch_end is not None:
            on_epoch_end(epoch)
            model.train()
        if time_limit is not None and clock.wall > time_limit:
            log(f"time limit of {time_limit:.0f} s reached after {steps} steps")
            break
    return {"epochs": len(history), "steps": steps, "wall": clock.wall, "cpu": clock.cpu,
            "images": images, "history": history}


def detection_loss(proposals=None):
    """loss_fn for fit(): the model's loss dict, with cached proposals when given."""
    def loss_fn(model, images, targets, idx):
        props = None if proposals is None else [proposals[int(i)] for i in idx]
        return model(images, targets, proposals=props)
    return loss_fn


def segmentation_loss(model, images, targets, idx):
    from shendu.ops import stack
    semantic = stack([t["semantic"] for t in targets])
    return {"loss_ce": F.cross_entropy(model(images), semantic)}


def predict_detections(model, dataset, proposals=None, batch_size=16, progress=False):
    """Detections for every scene, and the Clock of the model's forward passes alone."""
    model.eval()
    out, clock = [], Clock()
    bar = _progress(len(dataset), "predict", progress)
    with no_grad():
        for start in range(0, len(dataset), batch_size):
            idx = np.arange(start, min(start + batch_size, len(dataset)))
            images, _ = dataset.get_batch(idx)
            props = None if proposals is None else [proposals[int(i)] for i in idx]
            with clock:
                out += model(images, proposals=props)
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    return out, clock


def evaluate_detector(model, dataset, batch_size=16, progress=False):
    """Box (and, for models that output masks, mask) COCO mAP on ``dataset`` plus timings.

    Time per image is reported for the model alone and for proposals (the grouped-component
    proposals R-CNN and Fast R-CNN use; the RPN's time is inside the model's).
    """
    from shendu.vision.metrics import mean_average_precision
    proposals, prop_clock = (compute_proposals(dataset) if needs_fixed_proposals(model)
                             else (None, Clock()))
    detections, clock = predict_detections(model, dataset, proposals, batch_size, progress)
    targets = [dataset.target(i) for i in range(len(dataset))]
    result = {k: v.item() for k, v in mean_average_precision(detections, targets).items()}
    if detections and "masks" in detections[0]:
        masks = mean_average_precision(detections, targets, iou_type="segm")
        result.update({f"mask_{k}": v.item() for k, v in masks.items()})
    n = len(dataset)
    result.update(model_wall_per_image=clock.wall / n, model_cpu_per_image=clock.cpu / n,
                  proposal_wall_per_image=prop_clock.wall / n,
                  proposal_cpu_per_image=prop_clock.cpu / n, images=n)
    return result, detections


def predict_segmentation(model, dataset, batch_size=32):
    model.eval()
    out, clock = [], Clock()
    with no_grad():
        for start in range(0, len(dataset), batch_size):
            images = Tensor._wrap(dataset.images[start:start + batch_size])
            with clock:
                out.append(backend.to_numpy(model(images).argmax(dim=1)._data))
    return np.concatenate(out), clock


def evaluate_segmenter(model, dataset, batch_size=32):
    """Mean IoU (FCN's mean IU), per-class IoU and pixel accuracy on ``dataset``."""
    from shendu.vision.metrics import mean_iou, per_class_iou
    labels, clock = predict_segmentation(model, dataset, batch_size)
    pred, target = Tensor._wrap(labels), Tensor._wrap(dataset.semantic)
    k = len(dataset.classes)
    return {"miou": mean_iou(pred, target, k).item(),
            "per_class_iou": [round(float(v), 4) for v in per_class_iou(pred, target, k)._data],
            "pixel_accuracy": float((labels == dataset.semantic).mean()),
            "model_wall_per_image": clock.wall / len(dataset),
            "model_cpu_per_image": clock.cpu / len(dataset), "images": len(dataset)}, labels
