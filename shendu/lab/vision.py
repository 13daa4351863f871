"""N6.1: Fast R-CNN trains and tests far faster than R-CNN at similar accuracy; learned
(transposed-convolution) up-sampling segments better than fixed bilinear up-sampling.

Both run on the MNIST scenes of ``shendu.vision.datasets`` (1-5 digits on a 64x64 canvas;
training scenes from MNIST's training split, test scenes from its test split), with the
training loop of ``shendu.vision.engine`` (Adam, one-cycle learning rate).

- Detection: R-CNN and Fast R-CNN with the same backbone, heads, proposals (grouped connected
  components, computed once and shared), epochs and seed; measured: process CPU seconds per
  training image and per test image of the model alone (proposal time, identical for both, is
  excluded), and box mAP@0.5 on the test scenes. "Far faster" is read as a factor of at least
  3 per seed, "similar accuracy" as Fast R-CNN's mAP@0.5 no more than 0.05 below R-CNN's.
- Segmentation: the FCN of ``shendu.vision.segmentation`` with trainable ("learned") or frozen
  bilinear ConvTranspose2d up-sampling, same initialisation (bilinear), data and budget;
  measured: test mean IoU over the 11 classes.

CPU seconds (``time.process_time``) are quoted rather than wall seconds so that a busy machine
stretches both detectors alike; with 2 threads they are about twice the wall time.
"""
from __future__ import annotations

import shendu
from shendu.lab.common import _quiet, pyplot, save_figure, seed_list
from shendu.lab.result import ClaimResult, check_each, combine, compare, summarize

FAST_ID, UPSAMPLING_ID = "N6.1-fast-rcnn-vs-rcnn", "N6.1-learned-upsampling"
FAR_FASTER, SIMILAR_MAP = 3.0, 0.05
_SCENES = {}


def _scenes(train, count):
    """MNIST scenes (training split, seed 0 / test split, seed 2), cached per process."""
    from shendu.train.fault_zoo import MNIST_DIR
    from shendu.vision.datasets import MNISTScenes
    key = (train, count)
    if key not in _SCENES:
        _SCENES[key] = MNISTScenes("mnist", train=train, num_scenes=count, seed=0 if train else 2,
                                   root=MNIST_DIR)
    return _SCENES[key]


# (training scenes, test scenes, epochs) in (quick, full) mode
DETECTION_BUDGET, SEGMENTATION_BUDGET = ((16, 8, 1), (500, 200, 4)), ((16, 8, 1), (1000, 300, 4))


def _prepare(budget, quick, seed, seeds, progress):
    """(progress, seeds, training scenes, test scenes, epochs, (n_train, n_test)) of a run."""
    n_train, n_test, epochs = budget[0] if quick else budget[1]
    return (progress or _quiet(), seed_list(seed, seeds, quick), _scenes(True, n_train),
            _scenes(False, n_test), epochs, (n_train, n_test))


def run_fast_vs_rcnn(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.vision import engine
    from shendu.vision.detection import RCNN, FastRCNN
    progress, seeds, train_set, test_set, epochs, (n_train, n_test) = _prepare(
        DETECTION_BUDGET, quick, seed, seeds, progress)
    proposals, _ = engine.compute_proposals(train_set)
    names = {"Fast R-CNN": FastRCNN, "R-CNN": RCNN}
    runs = {name: {"train": [], "test": [], "map_50": []} for name in names}
    for s in seeds:
        for name, make in names.items():
            shendu.manual_seed(s)
            model = make(seed=s)
            fitted = engine.fit(model, train_set, engine.detection_loss(proposals), epochs,
                                batch_size=8, lr=2e-3, seed=s, log=lambda *a: None,
                                progress=False)
            scores, _ = engine.evaluate_detector(model, test_set)
            runs[name]["train"].append(fitted["cpu"] / fitted["images"])
            runs[name]["test"].append(scores["model_cpu_per_image"])
            runs[name]["map_50"].append(scores["map_50"])
        progress.update()
    fast, slow = runs["Fast R-CNN"], runs["R-CNN"]
    ratios = {k: [r / f for r, f in zip(slow[k], fast[k])] for k in ("train", "test")}
    map_gap = [f - r for f, r in zip(fast["map_50"], slow["map_50"])]
    verdict, reason = combine([
        check_each(ratios["train"], lambda r: r >= FAR_FASTER,
                   f"R-CNN / Fast R-CNN training time per image >= {FAR_FASTER:g}"),
        check_each(ratios["test"], lambda r: r >= FAR_FASTER,
                   f"R-CNN / Fast R-CNN test time per image >= {FAR_FASTER:g}"),
        check_each(map_gap, lambda d: d >= -SIMILAR_MAP,
                   f"Fast R-CNN mAP@0.5 - R-CNN mAP@0.5 >= -{SIMILAR_MAP:g}")])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    width, xs = 0.38, range(2)
    for i, (name, run) in enumerate(runs.items()):
        ms = [summarize([1000 * v for v in run[k]]) for k in ("train", "test")]
        axes[0].bar([x + (i - 0.5) * width for x in xs], [m["mean"] for m in ms], width,
                    yerr=[m["std"] for m in ms], label=name, color=f"C{i}")
        m = summarize(run["map_50"])
        axes[1].bar([i], [m["mean"]], 0.6, yerr=[m["std"]], color=f"C{i}")
    axes[0].set_xticks(list(xs), ["training", "test"]), axes[0].set_yscale("log")
    axes[0].set_ylabel("CPU ms per image (model)"), axes[0].legend()
    axes[1].set_xticks([0, 1], list(runs)), axes[1].set_ylabel("box mAP@0.5"), axes[1].set_ylim(0, 1)
    fig.suptitle(f"MNIST scenes: R-CNN vs Fast R-CNN ({len(seeds)} seed(s))")
    measurement = {"Fast R-CNN training CPU ms/image": summarize([1000 * v for v in fast["train"]]),
                   "R-CNN training CPU ms/image": summarize([1000 * v for v in slow["train"]]),
                   "training speed-up": summarize(ratios["train"]),
                   "Fast R-CNN test CPU ms/image": summarize([1000 * v for v in fast["test"]]),
                   "R-CNN test CPU ms/image": summarize([1000 * v for v in slow["test"]]),
                   "test speed-up": summarize(ratios["test"]),
                   "Fast R-CNN mAP@0.5": summarize(fast["map_50"]),
                   "R-CNN mAP@0.5": summarize(slow["map_50"])}
    return ClaimResult(
        FAST_ID, "N6.1", "Fast R-CNN, sharing one feature map through RoI pooling, trains and "
        "tests far faster than R-CNN at similar accuracy",
        f"R-CNN (each proposal warped to 32x32 and put through the CNN) and Fast R-CNN (one "
        f"feature map per image, 5x5 RoI max pooling), same 3-stage CNN and heads; {epochs} "
        f"epochs of Adam on {n_train} training scenes (batch 8), {n_test} test scenes; the same "
        "grouped-component proposals for both (their time excluded); CPU time of the model "
        f"alone per image; 'far faster' = a factor >= {FAR_FASTER:g}, 'similar' = mAP@0.5 "
        f"within {SIMILAR_MAP:g}",
        measurement, verdict, reason, save_figure(fig, out, FAST_ID), quick, seeds)


def run_upsampling(quick=False, seed=0, seeds=None, out=None, progress=None):
    from shendu.vision import engine
    from shendu.vision.segmentation import FCN
    progress, seeds, train_set, test_set, epochs, (n_train, n_test) = _prepare(
        SEGMENTATION_BUDGET, quick, seed, seeds, progress)
    miou, per_class = {"learned": [], "bilinear": []}, {"learned": [], "bilinear": []}
    for s in seeds:
        for name in miou:
            shendu.manual_seed(s)
            model = FCN(upsampling=name)
            engine.fit(model, train_set, engine.segmentation_loss, epochs, batch_size=8,
                       lr=2e-3, seed=s, log=lambda *a: None, progress=False)
            scores, _ = engine.evaluate_segmenter(model, test_set)
            miou[name].append(scores["miou"])
            per_class[name].append(scores["per_class_iou"])
        progress.update()
    verdict, reason = compare(miou["learned"], miou["bilinear"], "learned up-sampling",
                              "bilinear up-sampling")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    classes = list(range(len(per_class["learned"][0])))
    for i, name in enumerate(miou):
        means = [sum(run[c] for run in per_class[name]) / len(seeds) for c in classes]
        ax.bar([c + (i - 0.5) * 0.4 for c in classes], means, 0.4, color=f"C{i}",
               label=f"{name} (mIoU {summarize(miou[name])['mean']:.3f})")
    ax.set_xticks(classes, ["bg"] + [str(c) for c in range(len(classes) - 1)])
    ax.set_xlabel("class"), ax.set_ylabel("test IoU (mean over seeds)"), ax.set_ylim(0, 1)
    ax.legend(loc="lower right"), ax.set_title("FCN on MNIST scenes: learned vs fixed bilinear "
                                               "up-sampling")
    return ClaimResult(
        UPSAMPLING_ID, "N6.1", "learned up-sampling segments better than fixed (bilinear) "
        "up-sampling of the same network",
        f"FCN (4 conv stages, skips at strides 8, 4, 2, 1, three stride-2 4x4 ConvTranspose2d "
        f"initialised to bilinear), trainable vs frozen up-sampling; {epochs} epochs of Adam on "
        f"{n_train} training scenes (batch 8), {n_test} test scenes; mean IoU over 11 classes",
        {f"{k} mIoU": summarize(v) for k, v in miou.items()}, verdict, reason,
        save_figure(fig, out, UPSAMPLING_ID), quick, seeds)
