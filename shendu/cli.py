"""The ``shendu`` command line: ``shendu train`` and ``shendu eval`` (argparse + dataclasses).

``shendu train`` with no arguments trains LeNet-5 on Fashion-MNIST (55k train / 5k validation
split of the training set, seeded), with early stopping, best and last checkpoints, a progress
line per epoch, ``history.csv`` and ``curves.png``, and prints the test accuracy at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields

DATASETS = ("fashion-mnist", "mnist")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LR_SCHEDULES = ("none", "cosine", "onecycle")
AUGMENTATIONS = ("none", "auto", "shift", "flip", "shift+flip")
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}
# per-channel statistics of the training images, scaled to [0, 1]
NORMALIZE = {"fashion-mnist": (0.2860, 0.3530), "mnist": (0.1307, 0.3081)}
GET_FASHION = ("the full Fashion-MNIST was not found; get it with `apt-get install "
               "dataset-fashion-mnist` or pass --data-dir DIR (a folder with the four IDX files)")


@dataclass
class TrainConfig:
    """Everything ``shendu train`` needs; each field is a ``--flag`` of the same name."""

    model: str = "lenet5"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    subset: bool = False  # use the small Fashion-MNIST subset shipped with shendu
    optimizer: str = "adam"
    lr: float | None = None  # None: 0.05 for sgd, 1e-3 otherwise
    momentum: float = 0.9  # sgd and rmsprop
    weight_decay: float | None = None  # None: the optimizer's own default
    batch_size: int = 64
    epochs: int = 10
    patience: int = 3  # early stopping on --monitor
    monitor: str = "val_loss"  # picks best.st and the weights restored at the end
    val_size: int = 5000  # at most a tenth of the training set
    seed: int = 0
    device: str = "cpu"
    out: str | None = None  # None: runs/<model>-<dataset>-<timestamp>
    limit_train: int | None = None
    limit_test: int | None = None
    resume: str | None = None
    model_config: str | None = None  # KEY=VALUE[,KEY=VALUE...] overrides of the model's config
    lr_schedule: str = "none"  # per-batch 'cosine' decay to 0, or 'onecycle' (warm-up + decay)
    augment: str = "none"  # none, shift, flip, shift+flip; bare --augment: auto (see augmentation)
    nproc: int = 1  # processes (MPI ranks) sharing each batch; > 1 re-runs under mpiexec


def _flag(name):
    return "--" + name.replace("_", "-")


def add_train_arguments(parser):
    from shendu.models import list_models
    choices = {"model": list_models(), "dataset": DATASETS, "optimizer": OPTIMIZERS,
               "device": ("cpu", "cuda"), "lr_schedule": LR_SCHEDULES,
               "monitor": ("val_loss", "val_accuracy")}
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        default = getattr(defaults, f.name)
        if f.type == "bool":
            parser.add_argument(_flag(f.name), action="store_true")
            continue
        if f.name == "augment":  # a bare --augment picks what suits the dataset
            parser.add_argument(_flag(f.name), nargs="?", const="auto", default=default,
                                choices=AUGMENTATIONS, help=f"default: {default}; bare: auto")
            continue
        kind = {"int": int, "float": float}.get(f.type.split(" |")[0], str)
        parser.add_argument(_flag(f.name), type=kind, default=default,
                            choices=choices.get(f.name),
                            help=f"default: {default}" if default is not None else None)


# --- data -------------------------------------------------------------------------------------

def load_data(config, log):
    """(train, val, test) datasets; tells the user when the shipped subset is used."""
    from shendu import Generator
    from shendu.data import MNIST, FashionMNIST, Subset, random_split, transforms
    augment = augmentation(config) if config.augment != "none" else None  # bad flags fail first
    mean, std = NORMALIZE[config.dataset]
    tf = transforms.Normalize(mean, std)

    def load(train, transform):
        if config.dataset == "mnist":
            return MNIST(config.data_dir, train=train, transform=transform)
        if config.subset:
            return FashionMNIST.subset(train, transform)
        return FashionMNIST(config.data_dir, train, transform, allow_subset=True)

    train, test = load(True, tf), load(False, tf)
    if getattr(train, "is_subset", False) and not config.subset:
        log(f"note: {GET_FASHION}.")
    if getattr(train, "is_subset", False):
        log(f"training on the Fashion-MNIST subset shipped with shendu ({len(train):,} train / "
            f"{len(test):,} test images)")
    val_size = min(config.val_size, len(train) // 10)
    train, val = random_split(train, [len(train) - val_size, val_size],
                              generator=Generator(seed=config.seed))
    if augment is not None:
        # the validation images stay as they are: only the training view is augmented
        train = Subset(load(True, augment), train.indices)
    if config.limit_train is not None:
        train = Subset(train, list(range(min(config.limit_train, len(train)))))
    if config.limit_test is not None:
        test = Subset(test, list(range(min(config.limit_test, len(test)))))
    return train, val, test


def augmentation(config):
    """The training transform --augment names: random shifts by up to 2 pixels (a zero-padded
    crop) and/or left-right flips, then normalisation. 'auto' is shift+flip for Fashion-MNIST
    (garments are mirror-symmetric) and shift alone for MNIST (digits are not)."""
    from shendu import Generator
    from shendu.data import transforms
    kind = config.augment
    if kind == "auto":
        kind = "shift+flip" if config.dataset == "fashion-mnist" else "shift"
    if kind not in AUGMENTATIONS[2:]:
        raise ValueError(f"--augment: expected one of {AUGMENTATIONS}, got {config.augment!r}")
    if "flip" in kind and config.dataset == "mnist":
        raise ValueError("--augment: flips turn digits into other shapes; use shift for mnist")
    gen = Generator(seed=config.seed + 2)
    steps = []
    if "shift" in kind:
        steps.append(transforms.RandomCrop(28, padding=2, generator=gen))
    if "flip" in kind:
        steps.append(transforms.RandomHorizontalFlip(generator=gen))
    return transforms.Compose(steps + [transforms.Normalize(*NORMALIZE[config.dataset])])


def model_overrides(config):
    """--model-config 'activation=relu,width=0.25' as {'activation': 'relu', 'width': 0.25},
    each value converted to the type of the model config's default."""
    from shendu.models import get_config
    if not config.model_config:
        return {}
    defaults = get_config(config.model)
    known = {f.name for f in fields(defaults)}
    overrides = {}
    for item in config.model_config.split(","):
        key, sep, text = (part.strip() for part in item.partition("="))
        if not sep or key not in known:
            raise ValueError(f"--model-config: expected KEY=VALUE with KEY one of {sorted(known)} "
                             f"for {config.model}, got {item!r}")
        default = getattr(defaults, key)
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--model-config: {key} takes true or false, got {text!r}")
            overrides[key] = text.lower() in ("true", "1")
        elif isinstance(default, (int, float)):
            try:
                overrides[key] = type(default)(text)
            except ValueError:
                raise ValueError(f"--model-config: {key} takes a {type(default).__name__}, "
                                 f"got {text!r}") from None
        else:
            overrides[key] = text
    return overrides


def build_model(config):
    """The model ``config`` names, for 1-channel 10-class images, with --model-config applied."""
    from shendu.models import get_model
    return get_model(config.model, **{**data_fields(config.model), **model_overrides(config)})


def make_schedule(config, optimizer, steps_per_epoch):
    """The per-batch learning-rate schedule --lr-schedule names, or None."""
    from shendu.optim import lr_scheduler
    total = max(1, config.epochs * steps_per_epoch)
    if config.lr_schedule == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if config.lr_schedule == "onecycle":
        return lr_scheduler.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"],
                                       total_steps=total)
    return None


def make_optimizer(config, params):
    from shendu import optim
    lr = config.lr if config.lr is not None else DEFAULT_LR[config.optimizer]
    extra = {} if config.weight_decay is None else {"weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=lr, momentum=config.momentum, **extra)
    if config.optimizer == "rmsprop":
        return optim.RMSprop(params, lr=lr, momentum=config.momentum, **extra)
    return {"adam": optim.Adam, "adamw": optim.AdamW}[config.optimizer](params, lr=lr, **extra)


# --- outputs ----------------------------------------------------------------------------------

def plot_curves(history, path, log):
    """Loss and accuracy per epoch (train and validation) into ``path``; needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        log("matplotlib is not installed (pip install 'shendu[plot]'); skipping curves.png")
        return False
    epochs = [e + 1 for e in history.epoch]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if prefix + key in history.history:
                ax.plot(epochs, history.history[prefix + key], marker="o", label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def data_fields(name):
    """in_channels=1 and num_classes=10 (both datasets are grey and have 10 classes) for the
    models whose config has those fields (the zoo's ImageNet layouts default to 3 and 1000)."""
    from shendu.models import get_config
    known = {f.name for f in fields(get_config(name))}
    return {k: v for k, v in (("in_channels", 1), ("num_classes", 10)) if k in known}


def _loader(dataset, batch_size, shuffle=False, seed=None):
    from shendu import Generator
    from shendu.data import DataLoader
    gen = Generator(seed=seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen)


# --- commands ---------------------------------------------------------------------------------

def train(config: TrainConfig, log=print) -> dict:
    """Run ``shendu train``; returns {'test_accuracy', 'test_loss', 'out', 'epochs'}."""
    import shendu
    from shendu import nn
    from shendu.distributed.launch import TrainingRun
    from shendu.train import (CSVLogger, EarlyStopping, LRScheduler, ModelCheckpoint,
                              ProgressBar, TerminateOnNaN, Trainer)

    run = TrainingRun(config.nproc, config.batch_size)  # under mpiexec: this rank's part
    log = run.log(log)
    shendu.manual_seed(config.seed)
    model = build_model(config)  # first: a bad --model-config fails before any file is written
    out = config.out
    if out is None and config.resume is not None:
        out = os.path.dirname(os.path.abspath(config.resume))  # keep adding to the same run
    elif out is None:
        out = os.path.join("runs", f"{config.model}-{config.dataset}-"
                                   f"{time.strftime('%Y%m%d-%H%M%S')}")
    out = run.shared(out)  # rank 0's timestamp
    if run.is_main:
        os.makedirs(out, exist_ok=True)
    train_set, val_set, test_set = load_data(config, log)
    optimizer = make_optimizer(config, model.parameters())
    train_loader = run.train_loader(train_set, config.seed + 1) if run.distributed else \
        _loader(train_set, config.batch_size, True, config.seed + 1)
    schedule = make_schedule(config, optimizer, len(train_loader))
    if run.is_main:
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(asdict(config), f, indent=2)
    log(f"{config.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{len(train_set):,} train / {len(val_set):,} val / {len(test_set):,} test; "
        f"writing to {out}")
    mode = "max" if config.monitor.endswith("accuracy") else "min"
    callbacks = [ProgressBar(), TerminateOnNaN(),
                 EarlyStopping(monitor=config.monitor, mode=mode, patience=config.patience,
                               restore_best_weights=True),
                 CSVLogger(os.path.join(out, "history.csv"), append=config.resume is not None),
                 ModelCheckpoint(os.path.join(out, "best.st"), monitor=config.monitor,
                                 mode=mode, save_best_only=True),
                 ModelCheckpoint(os.path.join(out, "last.st"))]
    if schedule is not None:
        callbacks.append(LRScheduler(schedule, per="batch"))
    trainer = Trainer(run.wrap(model), optimizer, nn.CrossEntropyLoss(), callbacks=callbacks,
                      device=config.device)
    history = trainer.fit(train_loader, _loader(val_set, 1000), epochs=config.epochs,
                          resume_from=config.resume)
    test = trainer.evaluate(_loader(test_set, 1000))
    if run.is_main:
        plot_curves(history, os.path.join(out, "curves.png"), log)
    log(f"test accuracy: {test['accuracy']:.4f} (loss {test['loss']:.4f}) on "
        f"{len(test_set):,} test images, after {len(history.epoch)} "
        f"epoch{'s' if len(history.epoch) != 1 else ''}")
    return {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "out": out,
            "epochs": len(history.epoch)}


def evaluate(args, log=print) -> dict:
    """Run ``shendu eval``: the test accuracy of a checkpoint written by ``shendu train``."""
    from shendu import nn, serialization
    from shendu.train import Trainer

    saved = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "config.json")
    config = TrainConfig()
    if os.path.exists(saved):
        with open(saved) as f:
            config = TrainConfig(**json.load(f))
    for name in ("model", "dataset", "data_dir", "limit_test"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    config.subset = config.subset or args.subset
    state = serialization.load(args.checkpoint)
    model = build_model(config)
    model.load_state_dict(state["model"] if "model" in state else state)
    test_set = load_data(config, log)[2]
    trainer = Trainer(model, None, nn.CrossEntropyLoss(), device=args.device)
    test = trainer.evaluate(_loader(test_set, 1000))
    log(f"test accuracy: {test['accuracy']:.4f} (loss {test['loss']:.4f}) on "
        f"{len(test_set):,} test images")
    return test


def build_parser():
    parser = argparse.ArgumentParser(prog="shendu", description="shendu: deep learning on "
                                     "NumPy, checked against PyTorch")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_train_arguments(sub.add_parser("train", help="train a model (default: LeNet-5 on "
                                       "Fashion-MNIST)"))
    ev = sub.add_parser("eval", help="test accuracy of a checkpoint from `shendu train`")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--model", default=None)
    ev.add_argument("--dataset", default=None, choices=DATASETS)
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--subset", action="store_true")
    ev.add_argument("--limit-test", type=int, default=None)
    ev.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    from shendu.cli_lm import add_lm_parser
    add_lm_parser(sub)
    from shendu.cli_lab import add_lab_parser
    add_lab_parser(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    log = print
    try:
        from shendu import backend
        backend.normalize_device(args.device)
    except RuntimeError as err:  # e.g. --device cuda without CuPy
        print(f"shendu {args.command}: {err}", file=sys.stderr)
        return 2
    try:
        from shendu.distributed import launch
        if launch.needs_relaunch(getattr(args, "nproc", 1), getattr(args, "batch_size", None)):
            return launch.relaunch(sys.argv[1:] if argv is None else list(argv), args.nproc)
        if args.command == "train":
            names = {f.name for f in fields(TrainConfig)}
            config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
            train(config, log)
        elif args.command == "eval":
            evaluate(args, log)
        elif args.command == "lm":
            from shendu.cli_lm import run_lm
            run_lm(args, log)
        elif args.command == "lab":
            from shendu.cli_lab import run_lab
            run_lab(args, log)
    except (FileNotFoundError, ValueError) as err:
        print(f"shendu {args.command}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
