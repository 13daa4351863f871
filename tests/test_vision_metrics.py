"""shendu.vision.metrics: COCO mAP against pycocotools' COCOeval, mIoU against its definition."""
import contextlib
import io

import numpy as np
import pytest

import shendu
from shendu.vision.metrics import confusion_matrix, mean_average_precision, mean_iou, \
    per_class_iou

coco = pytest.importorskip("pycocotools.coco", reason="pycocotools is the oracle (test extra)")
cocoeval = pytest.importorskip("pycocotools.cocoeval")
mask_utils = pytest.importorskip("pycocotools.mask")


def _scene(rng, n_images, n_classes, size=40, masks=False):
    preds, targets = [], []
    for _ in range(n_images):
        m = rng.integers(0, 6)
        gt = rng.uniform(0, size - 12, size=(m, 2))
        gt = np.concatenate([gt, gt + rng.uniform(3, 12, size=(m, 2))], axis=1).round()
        labels = rng.integers(0, n_classes, size=m)
        # detections: jittered copies of the ground truth, plus clutter
        n_noise = rng.integers(0, 5)
        noise = rng.uniform(0, size - 10, size=(n_noise, 2))
        boxes = np.concatenate([gt + rng.normal(0, 1.5, size=gt.shape),
                                np.concatenate([noise, noise + rng.uniform(2, 10, (n_noise, 2))],
                                               axis=1)])
        boxes = np.clip(np.sort(boxes.reshape(-1, 2, 2), axis=1).reshape(-1, 4), 0, size)
        det_labels = np.concatenate([np.where(rng.uniform(size=m) < 0.8, labels,
                                              rng.integers(0, n_classes, size=m)),
                                     rng.integers(0, n_classes, size=n_noise)])
        scores = rng.uniform(size=len(boxes)).round(2)  # ties, as real detectors make
        target = {"boxes": gt, "labels": labels}
        pred = {"boxes": boxes, "scores": scores, "labels": det_labels}
        if masks:
            target["masks"] = _box_masks(rng, gt, size)
            pred["masks"] = _box_masks(rng, boxes, size)
        targets.append(target)
        preds.append(pred)
    return preds, targets


def _box_masks(rng, boxes, size):
    out = np.zeros((len(boxes), size, size), dtype=bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.round().astype(int)):
        out[i, y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)] = True
        out[i] &= rng.uniform(size=(size, size)) < 0.9
    return out


def _cocoeval(preds, targets, iou_type):
    images, anns, dets = [], [], []
    for i, (p, t) in enumerate(zip(preds, targets)):
        images.append({"id": i, "height": 40, "width": 40})
        for j, (box, label) in enumerate(zip(t["boxes"], t["labels"])):
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": int(label), "iscrowd": 0,
                   "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                   "area": float((box[2] - box[0]) * (box[3] - box[1]))}
            if iou_type == "segm":
                ann["segmentation"] = mask_utils.encode(np.asfortranarray(
                    t["masks"][j].astype(np.uint8)))
                ann["area"] = float(t["masks"][j].sum())
            anns.append(ann)
        for j, (box, score, label) in enumerate(zip(p["boxes"], p["scores"], p["labels"])):
            det = {"image_id": i, "category_id": int(label), "score": float(score),
                   "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]}
            if iou_type == "segm":
                det["segmentation"] = mask_utils.encode(np.asfortranarray(
                    p["masks"][j].astype(np.uint8)))
            dets.append(det)
    classes = sorted({int(c) for t in targets for c in t["labels"]}
                     | {int(c) for p in preds for c in p["labels"]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c} for c in classes]}
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else coco.COCO()
        ev = cocoeval.COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _tensors(dicts):
    return [{k: shendu.tensor(v) for k, v in d.items()} for d in dicts]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_box_map_equals_cocoeval(seed):
    rng = np.random.default_rng(seed)
    preds, targets = _scene(rng, 12, 3)
    stats = _cocoeval(preds, targets, "bbox")
    ours = mean_average_precision(_tensors(preds), _tensors(targets))
    np.testing.assert_allclose([ours["map"].item(), ours["map_50"].item(),
                                ours["map_75"].item(), ours["mar_100"].item()],
                               [stats[0], stats[1], stats[2], stats[8]], atol=1e-6)


def test_mask_map_equals_cocoeval():
    rng = np.random.default_rng(7)
    preds, targets = _scene(rng, 6, 2, masks=True)
    stats = _cocoeval(preds, targets, "segm")
    ours = mean_average_precision(_tensors(preds), _tensors(targets), iou_type="segm")
    np.testing.assert_allclose([ours["map"].item(), ours["map_50"].item(),
                                ours["map_75"].item()], stats[:3], atol=1e-6)


def test_map_perfect_and_empty_cases():
    box = shendu.tensor([[1.0, 1, 5, 5]])
    perfect = mean_average_precision(
        [{"boxes": box, "scores": shendu.tensor([0.9]), "labels": shendu.tensor([2])}],
        [{"boxes": box, "labels": shendu.tensor([2])}])
    assert perfect["map"].item() == pytest.approx(1.0)
    missed = mean_average_precision(
        [{"boxes": shendu.zeros(0, 4), "scores": shendu.zeros(0),
          "labels": shendu.zeros(0, dtype=shendu.int64)}],
        [{"boxes": box, "labels": shendu.tensor([2])}])
    assert missed["map"].item() == 0.0
    with pytest.raises(ValueError, match=r"preds\[0\] lacks \['scores'\]"):
        mean_average_precision([{"boxes": box, "labels": shendu.tensor([1])}],
                               [{"boxes": box, "labels": shendu.tensor([1])}])


def test_mean_iou_matches_definition():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 4, size=(3, 9, 9))
    pred = np.where(rng.uniform(size=target.shape) < 0.7, target, rng.integers(0, 4, target.shape))
    pred[pred == 3] = 2  # class 3 never predicted: IoU 0, still counted
    cm = confusion_matrix(shendu.tensor(pred), shendu.tensor(target), 4).numpy()
    assert cm.sum() == target.size and cm[1, 1] == ((pred == 1) & (target == 1)).sum()
    expected = [((pred == c) & (target == c)).sum() / ((pred == c) | (target == c)).sum()
                for c in range(4)]
    np.testing.assert_allclose(per_class_iou(shendu.tensor(pred), shendu.tensor(target),
                                             4).numpy(), expected)
    assert mean_iou(shendu.tensor(pred), shendu.tensor(target), 4).item() == \
        pytest.approx(np.mean(expected))
    assert mean_iou(shendu.tensor(pred), shendu.tensor(target), 4,
                    include_background=False).item() == pytest.approx(np.mean(expected[1:]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        confusion_matrix(shendu.tensor(pred), shendu.tensor(target), 3)
