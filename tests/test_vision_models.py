"""shendu.vision: scenes, proposals, the detection and segmentation models, mask pasting,
and the detect/segment CLI (small and fast: a few steps on a handful of scenes)."""
import json

import numpy as np
import pytest

import shendu
from shendu.vision.datasets import MNISTScenes, collate_scenes
from shendu.vision.detection import (RCNN, FasterRCNN, FastRCNN, MaskRCNN, connected_components,
                                     grouped_component_proposals, make_anchors, paste_masks,
                                     proposal_recall)
from shendu.vision.segmentation import FCN, bilinear_kernel

MNIST_DIR = "/work/shared/data/mnist"


@pytest.fixture(scope="module")
def scenes():
    try:
        return MNISTScenes(root=MNIST_DIR, num_scenes=6, seed=3)
    except FileNotFoundError:
        return MNISTScenes("fashion-mnist", num_scenes=6, seed=3)  # the shipped subset


def test_scenes_are_deterministic_and_consistent(scenes):
    again = MNISTScenes(scenes.source, root=MNIST_DIR, num_scenes=6, seed=3)
    np.testing.assert_array_equal(scenes.images, again.images)
    other = MNISTScenes(scenes.source, root=MNIST_DIR, num_scenes=6, seed=4)
    assert not np.array_equal(scenes.images, other.images)
    for i in range(len(scenes)):
        image, t = scenes[i]
        n = t["labels"].shape[0]
        assert image.shape == (1, 64, 64) and image.dtype == shendu.float32
        assert 1 <= n <= 5 and t["boxes"].shape == (n, 4) and t["masks"].shape == (n, 64, 64)
        assert ((t["labels"].numpy() >= 1) & (t["labels"].numpy() <= 10)).all()
        sem, masks = t["semantic"].numpy(), t["masks"].numpy()
        for j in range(n):  # the instance mask lies in its box and carries its label
            x1, y1, x2, y2 = t["boxes"].numpy()[j].astype(int)
            ys, xs = np.nonzero(masks[j])
            assert ys.min() >= y1 and ys.max() < y2 and xs.min() >= x1 and xs.max() < x2
            assert (sem[masks[j]] == t["labels"].numpy()[j]).all()
        assert ((sem > 0) == masks.any(axis=0)).all()
    images, targets = collate_scenes([scenes[0], scenes[1]])
    assert images.shape == (2, 1, 64, 64) and len(targets) == 2
    with pytest.raises(ValueError, match="MNISTScenes: source"):
        MNISTScenes("cifar")


def test_connected_components_and_proposals(scenes):
    ink = np.zeros((1, 6, 7), dtype=bool)
    ink[0, 0, 0] = ink[0, 1, 1] = True  # diagonal neighbours: one component
    ink[0, 4:6, 3:7] = True
    labels = connected_components(ink)
    assert len(np.unique(labels[labels > 0])) == 2 and labels[0, 0, 0] == labels[0, 1, 1]
    proposals = grouped_component_proposals(shendu.tensor(scenes.images))
    targets = [scenes.target(i) for i in range(len(scenes))]
    assert proposal_recall(proposals, targets, 0.5) >= 0.9
    assert all(p.shape[1] == 4 and p.dtype == shendu.float32 for p in proposals)


def test_anchors_are_centred_with_the_requested_shapes():
    anchors = make_anchors((8,), (1.0, 4.0), (2, 3), 4)
    assert anchors.shape == (2 * 3 * 2, 4)
    np.testing.assert_allclose(anchors[0], [-2, -2, 6, 6])  # cell (0, 0), square
    np.testing.assert_allclose(anchors[1], [0, -6, 4, 10])  # height / width = 4
    np.testing.assert_allclose(anchors[2], [2, -2, 10, 6])  # next cell to the right


def test_paste_masks_fills_the_box():
    pasted = paste_masks(shendu.ones(1, 4, 4), shendu.tensor([[2.0, 1.0, 6.0, 3.0]]),
                         (5, 8)).numpy()[0]
    expected = np.zeros((5, 8))
    expected[1:3, 2:6] = 1
    np.testing.assert_allclose(pasted, expected)


@pytest.mark.parametrize("cls", [FastRCNN, RCNN, FasterRCNN, MaskRCNN])
def test_detectors_train_and_predict(cls, scenes):
    shendu.manual_seed(0)
    model = cls()
    images, targets = scenes.get_batch(np.arange(3))
    opt = shendu.optim.Adam(model.parameters(), 1e-3)
    losses = model(images, targets)
    assert all(np.isfinite(v.item()) for v in losses.values())
    before = [p.detach().numpy().copy() for p in model.parameters()]
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    moved = sum(not np.array_equal(b, p.detach().numpy()) for b, p in zip(before, model.parameters()))
    assert moved == len(before)  # every head gets a gradient
    model.eval()
    with shendu.no_grad():
        out = model(images[:2])
    assert len(out) == 2
    for det in out:
        d = det["boxes"].shape[0]
        assert det["scores"].shape == (d,) and det["labels"].shape == (d,)
        if cls is MaskRCNN:
            assert det["masks"].shape == (d, 64, 64) and det["masks"].dtype == shendu.bool
    with pytest.raises(ValueError, match="training needs one target dict per image"):
        model.train()
        model(images)


def test_fcn_upsampling_modes():
    kernel = bilinear_kernel(2, 4)
    np.testing.assert_allclose(kernel[0, 0, 0], [0.0625, 0.1875, 0.1875, 0.0625])
    assert (kernel[0, 1] == 0).all()
    x = shendu.randn(2, 1, 32, 32)
    learned, fixed = FCN(upsampling="learned"), FCN(upsampling="bilinear")
    assert learned(x).shape == (2, 11, 32, 32)
    fixed(x).sum().backward()
    assert fixed.up1.weight.grad is None and fixed.score1.weight.grad is not None
    # a frozen up-sampler is exact bilinear interpolation: a constant map stays constant inside
    up = fixed.up1(shendu.ones(1, 11, 4, 4)).numpy()
    np.testing.assert_allclose(up[0, :, 1:-1, 1:-1], 1.0)
    with pytest.raises(ValueError, match="FCN: upsampling"):
        FCN(upsampling="nearest")


def test_cli_detect_and_segment_round_trip(tmp_path, capsys):
    from shendu.cli import main
    common = ["--data-dir", MNIST_DIR, "--train-scenes", "4", "--val-scenes", "2",
              "--test-scenes", "2", "--epochs", "1", "--batch-size", "2", "--no-progress"]
    for task, extra in (("detect", ["--model", "fast_rcnn"]), ("segment", [])):
        out = tmp_path / task
        assert main([task, "train", *extra, *common, "--out", str(out)]) == 0
        assert {"config.json", "best.st", "last.st", "results.json"} <= {p.name for p in
                                                                           out.iterdir()}
        result = json.loads((out / "results.json").read_text())
        assert ("map_50" if task == "detect" else "miou") in result
        assert main([task, "eval", "--checkpoint", str(out / "best.st")]) == 0
        png = tmp_path / f"{task}.png"
        assert main([task, "predict", "--checkpoint", str(out / "best.st"), "--num", "2",
                     "--output", str(png)]) == 0
        assert png.stat().st_size > 0
    capsys.readouterr()
    assert main(["detect", "train", "--epochs", "0", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert main(["detect", "eval", "--checkpoint", str(tmp_path / "missing.st")]) == 2
