"""``shendu detect`` and ``shendu segment``: train, evaluate and draw detection and
segmentation models on the MNIST scenes (Concept: N6.1).

    shendu detect train --model fast_rcnn|rcnn|faster_rcnn|mask_rcnn [--epochs N] [--out DIR]
    shendu detect eval --checkpoint DIR/best.st [--test-scenes N]
    shendu detect predict --checkpoint DIR/best.st [--num 8] [--output predictions.png]
    shendu detect scenes --output scenes.png   (the generated ground truth, drawn)
    shendu segment train --upsampling learned|bilinear ...; segment eval / predict likewise

Training scenes are drawn from the source's training split; validation scenes (best.st is
chosen on them) from the training split with another seed; test scenes from the test split.
A run folder holds config.json, history.json, best.st, last.st and results.json.
"""
from __future__ import annotations

import json
import os
import time

DETECTORS = ("fast_rcnn", "rcnn", "faster_rcnn", "mask_rcnn")
TRAIN_SEED, VAL_SEED, TEST_SEED = 0, 1, 2


def _common(parser, task):
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"))
    parser.add_argument("--data-dir", default=None, help="folder of the IDX files")
    parser.add_argument("--canvas", type=int, default=64)
    parser.add_argument("--progress", action="store_true", default=True)
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def _add_task(sub, task):
    what = "object detection" if task == "detect" else "semantic segmentation"
    p = sub.add_parser(task, help=f"{what} on MNIST scenes: train, eval, predict")
    p.add_argument("--device", default="cpu", choices=("cpu",),
                   help="the vision models run on the CPU (proposals and matching are host code)")
    cmds = p.add_subparsers(dest="vision_command", metavar="COMMAND", required=True)
    tr = cmds.add_parser("train", help=f"train a {what} model")
    _common(tr, task)
    if task == "detect":
        tr.add_argument("--model", default="fast_rcnn", choices=DETECTORS)
    else:
        tr.add_argument("--upsampling", default="learned", choices=("learned", "bilinear"))
    tr.add_argument("--train-scenes", type=int, default=2000)
    tr.add_argument("--val-scenes", type=int, default=100)
    tr.add_argument("--test-scenes", type=int, default=300)
    tr.add_argument("--epochs", type=int, default=6)
    tr.add_argument("--batch-size", type=int, default=8)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--time-limit", type=float, default=None, help="seconds of training")
    tr.add_argument("--threads", type=int, default=None,
                    help="CPU threads for the math (shendu.set_num_threads); 1 runs two "
                         "trainings side by side on 2 cores without BLAS threads contending")
    tr.add_argument("--out", default=None, help="run folder (default runs/<model>-<time>)")
    show = cmds.add_parser("scenes", help="draw generated scenes with their ground truth (PNG)")
    _common(show, task)
    show.add_argument("--num", type=int, default=8)
    show.add_argument("--split", default="train", choices=("train", "val", "test"))
    show.add_argument("--output", required=True, help="PNG path")
    for name in ("eval", "predict"):
        c = cmds.add_parser(name, help="test-scene scores of a checkpoint" if name == "eval"
                            else "draw a checkpoint's predictions on test scenes (PNG)")
        c.add_argument("--checkpoint", required=True)
        c.add_argument("--test-scenes", type=int, default=None)
        c.add_argument("--data-dir", default=None)
        c.add_argument("--progress", action="store_true", default=False)
        if name == "predict":
            c.add_argument("--num", type=int, default=8, help="scenes drawn")
            c.add_argument("--score-thresh", type=float, default=0.5)
            c.add_argument("--output", default=None, help="PNG path (default: next to the "
                           "checkpoint, predictions.png)")
    return p


def add_vision_parsers(sub):
    """Register ``detect`` and ``segment`` on the main parser's subparsers."""
    return _add_task(sub, "detect"), _add_task(sub, "segment")


def build_model(config):
    from shendu.vision.detection import RCNN, FasterRCNN, FastRCNN, MaskRCNN
    from shendu.vision.segmentation import FCN
    if config["task"] == "segment":
        return FCN(upsampling=config["upsampling"])
    return {"fast_rcnn": FastRCNN, "rcnn": RCNN, "faster_rcnn": FasterRCNN,
            "mask_rcnn": MaskRCNN}[config["model"]](seed=config["seed"])


def scenes(config, split, count):
    from shendu.vision.datasets import MNISTScenes
    seed = {"train": TRAIN_SEED, "val": VAL_SEED, "test": TEST_SEED}[split]
    return MNISTScenes(config["dataset"], train=split != "test", num_scenes=count,
                       seed=seed + 1000 * config.get("scene_seed", 0), canvas=config["canvas"],
                       root=config.get("data_dir"))


def _evaluate(model, config, dataset, progress=False):
    from shendu.vision.engine import evaluate_detector, evaluate_segmenter
    if config["task"] == "segment":
        return evaluate_segmenter(model, dataset)[0]
    return evaluate_detector(model, dataset, progress=progress)[0]


def _check_train_args(args):
    for name in ("train_scenes", "val_scenes", "test_scenes", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    if args.canvas < 32 or args.canvas % 8:
        raise ValueError(f"--canvas must be a multiple of 8 and >= 32, got {args.canvas}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")


def train(args, task, log=print):
    import shendu
    from shendu.vision import engine
    _check_train_args(args)
    if args.threads is not None:
        shendu.set_num_threads(args.threads)
    config = {k: v for k, v in vars(args).items() if k not in ("command", "vision_command",
                                                                  "progress", "out", "threads")}
    config["task"] = task
    name = config.get("model") or f"fcn-{config['upsampling']}"
    shendu.manual_seed(args.seed)
    model = build_model(config)  # before any file is written
    train_set = scenes(config, "train", args.train_scenes)
    val_set, test_set = scenes(config, "val", args.val_scenes), scenes(config, "test",
                                                                       args.test_scenes)
    out = args.out or os.path.join("runs", f"{name}-{args.dataset}-"
                                           f"{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{name}: {n_params:,} parameters; {len(train_set)} train / {len(val_set)} val / "
        f"{len(test_set)} test scenes; writing to {out}")
    proposal_clock = engine.Clock()
    if task == "segment":
        loss_fn = engine.segmentation_loss
    elif engine.needs_fixed_proposals(model):
        proposals, proposal_clock = engine.compute_proposals(train_set)
        log(f"proposals for the training scenes: {proposal_clock.wall:.1f} s")
        loss_fn = engine.detection_loss(proposals)
    else:
        loss_fn = engine.detection_loss()
    key = "miou" if task == "segment" else "map_50"
    best = {"score": -1.0, "epoch": None}

    def on_epoch_end(epoch):
        score = _evaluate(model, config, val_set)[key]
        shendu.save({"model": model.state_dict()}, os.path.join(out, "last.st"))
        if score > best["score"]:
            best.update(score=score, epoch=epoch + 1)
            shendu.save({"model": model.state_dict()}, os.path.join(out, "best.st"))
        log(f"  validation {key} {score:.4f} (best {best['score']:.4f}, epoch {best['epoch']})")

    fitted = engine.fit(model, train_set, loss_fn, args.epochs, args.batch_size, args.lr,
                        args.seed, args.time_limit, log, args.progress, on_epoch_end)
    model.load_state_dict(shendu.load(os.path.join(out, "best.st"))["model"])
    result = _evaluate(model, config, test_set, args.progress)
    result.update(train_wall=fitted["wall"], train_cpu=fitted["cpu"], epochs=fitted["epochs"],
                  train_images=fitted["images"], best_epoch=best["epoch"],
                  train_wall_per_image=fitted["wall"] / fitted["images"],
                  train_cpu_per_image=fitted["cpu"] / fitted["images"],
                  train_proposal_wall=proposal_clock.wall)
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump(fitted["history"], f, indent=2)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    log(_summary(result))
    return result


def _summary(result):
    keys = ("map", "map_50", "map_75", "mask_map", "mask_map_50", "miou", "pixel_accuracy",
            "model_wall_per_image", "model_cpu_per_image", "proposal_wall_per_image",
            "train_wall", "train_cpu")
    return "test: " + ", ".join(f"{k} {result[k]:.4f}" for k in keys if k in result)


def _load(args):
    import shendu
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint} not found")
    saved = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "config.json")
    if not os.path.isfile(saved):
        raise FileNotFoundError(f"{saved} not found: the checkpoint must sit in a run folder "
                                "written by `shendu detect|segment train`")
    with open(saved) as f:
        config = json.load(f)
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    model = build_model(config)
    model.load_state_dict(shendu.load(args.checkpoint)["model"])
    model.eval()
    return model, config


def evaluate(args, task, log=print):
    model, config = _load(args)
    if config["task"] != task:
        raise ValueError(f"{args.checkpoint} holds a {config['task']} model; use "
                         f"`shendu {config['task']} eval`")
    dataset = scenes(config, "test", args.test_scenes or config["test_scenes"])
    result = _evaluate(model, config, dataset, args.progress)
    log(_summary(result))
    return result


def predict(args, task, log=print):
    from shendu.tensor import Tensor
    from shendu.vision.drawing import annotate, save_annotated_grid
    from shendu.vision.engine import compute_proposals, needs_fixed_proposals, \
        predict_detections, predict_segmentation
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    model, config = _load(args)
    dataset = scenes(config, "test", args.num)
    output = args.output or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)),
                                         "predictions.png")
    names = [c.split(" - ")[0] for c in dataset.classes]
    tiles = []
    if task == "segment":
        from shendu import backend
        labels, _ = predict_segmentation(model, dataset)
        classes = backend.xp_of(labels).arange(1, len(dataset.classes))[:, None, None]
        for i in range(len(dataset)):
            masks = Tensor._wrap(labels[i][None] == classes)  # one mask per class
            tiles.append(annotate(Tensor._wrap(dataset.images[i]), masks=masks))
    else:
        proposals = compute_proposals(dataset)[0] if needs_fixed_proposals(model) else None
        detections, _ = predict_detections(model, dataset, proposals)
        for i, det in enumerate(detections):
            keep = (det["scores"]._data >= args.score_thresh).nonzero()[0]
            boxes = Tensor._wrap(det["boxes"]._data[keep])
            text = [f"{names[int(l)]} {s:.2f}" for l, s in zip(det["labels"]._data[keep],
                                                                det["scores"]._data[keep])]
            masks = Tensor._wrap(det["masks"]._data[keep]) if "masks" in det else None
            tiles.append(annotate(Tensor._wrap(dataset.images[i]), boxes, text, masks))
    save_annotated_grid(output, tiles)
    log(f"wrote {output} ({len(tiles)} scenes)")
    return output


def show_scenes(args, task, log=print):
    """Ground truth of generated scenes: boxes and labels (detect) or class masks (segment)."""
    from shendu.tensor import Tensor
    from shendu.vision.drawing import annotate, save_annotated_grid
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    config = dict(vars(args), task=task)
    dataset = scenes(config, args.split, args.num)
    names = [c.split(" - ")[0] for c in dataset.classes]
    tiles = []
    for i in range(len(dataset)):
        t = dataset.target(i)
        labels = [names[int(c)] for c in t["labels"]._data]
        image = Tensor._wrap(dataset.images[i])
        tiles.append(annotate(image, t["boxes"], labels) if task == "detect"
                     else annotate(image, masks=t["masks"]))
    save_annotated_grid(args.output, tiles)
    log(f"wrote {args.output} ({len(tiles)} {args.split} scenes)")
    return args.output


def run_vision(args, log=print):
    """Run ``shendu detect|segment train|eval|predict|scenes``."""
    action = {"train": train, "eval": evaluate, "predict": predict,
              "scenes": show_scenes}[args.vision_command]
    return action(args, args.command, log)
