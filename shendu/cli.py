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
from dataclasses import asdict, dataclass, fields, replace

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
    label_smoothing: float = 0.0  # the training loss's, as torch's CrossEntropyLoss
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
    adversarial_eps: float = 0.0  # > 0: PGD adversarial training (Madry) at this L-inf budget
    adversarial_steps: int = 7  # PGD steps per training batch (step 2.5 * eps / steps)
    adversarial_ramp: int = 0  # batches over which the PGD budget grows linearly to its eps
    doctor: str = "none"  # bare --doctor: diagnose the run; 'repair': also treat it (cli_doctor)
    tensorboard: bool = False  # also write TensorBoard event files to <out>/tensorboard


# what each flag means, for --help (the defaults are added from TrainConfig)
HELP = {
    "model": "the network to train (models that fit 28x28 grey images: see below)",
    "dataset": "which 10-class 28x28 image set to train on",
    "data_dir": "folder holding the four IDX files; without it the system copy is used, or "
                "the subset shipped with shendu when none is found",
    "subset": "train on the small Fashion-MNIST subset shipped with shendu",
    "optimizer": "the optimizer", "lr": "learning rate (default: 0.05 for sgd, 1e-3 otherwise)",
    "momentum": "momentum of sgd and rmsprop",
    "weight_decay": "weight decay (default: the optimizer's own)",
    "label_smoothing": "mix each training target with the uniform distribution by this much "
                       "(torch's CrossEntropyLoss(label_smoothing=))",
    "batch_size": "training images per step", "epochs": "passes over the training set",
    "patience": "epochs without a better --monitor before stopping early",
    "monitor": "the validation metric that picks best.st and the weights kept at the end",
    "val_size": "training images held out for validation (at most a tenth of the set)",
    "seed": "seed of every random stream (split, shuffling, initialisation, augmentation)",
    "device": "where to compute", "out": "output folder (default: runs/<model>-<dataset>-<time>)",
    "limit_train": "train on only the first N training images",
    "limit_test": "score only the first N test images",
    "resume": "continue the run saved in this checkpoint (its last.st)",
    "model_config": "KEY=VALUE[,KEY=VALUE...] overrides of the model's config",
    "lr_schedule": "per-batch learning-rate schedule",
    "augment": "training-image augmentation (bare: shift+flip for Fashion-MNIST, shift for "
               "digits)",
    "tensorboard": "also write TensorBoard event files to <out>/tensorboard (needs the "
                   "'tensorboard' extra: pip install 'shendu[tensorboard]')",
    "nproc": "processes (MPI ranks) sharing each batch; more than 1 re-runs under mpiexec",
    "adversarial_eps": "above 0: Madry-style PGD adversarial training at this L-inf budget "
                       "(pixels in [0, 1])",
    "adversarial_steps": "PGD steps per training batch (step size 2.5 * eps / steps)",
    "adversarial_ramp": "batches over which the PGD budget grows linearly to its eps",
    "doctor": "diagnose the run (the notes' Tables 2-3) and write doctor.json; 'repair' also "
              "treats it",
}


def _flag(name):
    return "--" + name.replace("_", "-")


def add_train_arguments(parser):
    # --model takes any registered name so that an unfit one gets a reason, not a bare
    # "invalid choice"; the help lists the ones that fit
    parser.epilog = "models that fit 28x28 grey images: " + ", ".join(image_models())
    choices = {"dataset": DATASETS, "optimizer": OPTIMIZERS,
               "device": ("cpu", "cuda"), "lr_schedule": LR_SCHEDULES,
               "monitor": ("val_loss", "val_accuracy")}
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        default = getattr(defaults, f.name)
        if f.type == "bool":
            parser.add_argument(_flag(f.name), action="store_true", help=HELP[f.name])
            continue
        if f.name == "augment":  # a bare --augment picks what suits the dataset
            parser.add_argument(_flag(f.name), nargs="?", const="auto", default=default,
                                choices=AUGMENTATIONS,
                                help=f"{HELP[f.name]}; default: {default}")
            continue
        if f.name == "doctor":  # a bare --doctor diagnoses; --doctor repair also treats
            parser.add_argument(_flag(f.name), nargs="?", const="on", default=default,
                                choices=("none", "on", "repair"), help="bare: on")
            continue
        kind = {"int": int, "float": float}.get(f.type.split(" |")[0], str)
        parser.add_argument(_flag(f.name), type=kind, default=default,
                            choices=choices.get(f.name),
                            help=HELP[f.name] + (f"; default: {default}"
                                                 if default is not None else ""))


# --- checking flags before anything is written -----------------------------------------------

# ImageNet layouts whose pools shrink a 28x28 image to nothing (found by running each
# registered model on a 28x28 batch); their _small variants are the 28x28 versions
_VGG_WHY = ("its five 2x2 max-pools need images of at least 32x32 and these are 28x28; "
            "vgg11_small and vgg16_small are its 28x28 versions")
NEEDS_LARGER_IMAGES = {
    "alexnet": "its max-pools after an 11x11 stride-4 convolution need images larger than "
               "28x28 (it is laid out for 224x224 photos); try googlenet or resnet18_small",
    **{name: _VGG_WHY for name in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16",
                                   "vgg16_bn", "vgg19", "vgg19_bn")}}


def is_language_model(name):
    from shendu.models import get_config
    return any(f.name == "vocab_size" for f in fields(get_config(name)))


def image_models():
    """The registered models ``shendu train`` can fit to 28x28 grey 10-class images."""
    from shendu.models import list_models
    return [name for name in list_models()
            if name not in NEEDS_LARGER_IMAGES and not is_language_model(name)]


def why_model_unfit(name):
    """Why --model ``name`` cannot be trained here, or None when it can."""
    from shendu.models import list_models
    if name not in list_models():
        return f"unknown model {name!r}; models that fit: {', '.join(image_models())}"
    if is_language_model(name):
        return (f"{name} is a language model (it reads token ids, not images); train it with "
                f"`shendu lm train --model {'gpt' if name == 'gpt' else 'lstm'}`")
    if name in NEEDS_LARGER_IMAGES:
        return f"{name} cannot run on these images: {NEEDS_LARGER_IMAGES[name]}"
    return None


def check_train_config(config):
    """Raise ValueError (one line, naming the flag) for any bad ``shendu train`` flag.

    Runs before anything is built, read or written, so a bad flag leaves no folder behind.
    Checks that need the model (--model-config, --resume's contents) follow in ``train``,
    still before the first write.
    """
    for name in ("epochs", "batch_size", "val_size", "limit_train", "limit_test"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ValueError(f"{_flag(name)} must be at least 1, got {value}"
                             + (" (early stopping and best.st need validation images)"
                                if name == "val_size" else ""))
    for name in ("patience", "seed", "momentum", "weight_decay"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ValueError(f"{_flag(name)} must be >= 0, got {value}")
    if not 0.0 <= config.label_smoothing < 1.0:
        raise ValueError(f"--label-smoothing must be in [0, 1), got {config.label_smoothing}")
    if config.lr is not None and not config.lr > 0:
        raise ValueError(f"--lr must be > 0, got {config.lr}")
    problem = why_model_unfit(config.model)
    if problem:
        raise ValueError(f"--model: {problem}")
    if config.subset and config.dataset != "fashion-mnist":
        raise ValueError("--subset: the shipped subset is Fashion-MNIST's; drop --subset or "
                         "use --dataset fashion-mnist")
    if config.subset and config.data_dir is not None:
        raise ValueError("--subset and --data-dir exclude each other: the subset ships with "
                         "shendu")
    if config.data_dir is not None and not os.path.isdir(config.data_dir):
        raise ValueError(f"--data-dir {config.data_dir}: no such folder")
    if config.resume is not None and not os.path.isfile(config.resume):
        raise ValueError(f"--resume {config.resume}: no such file")
    if config.out is not None and os.path.exists(config.out) and not os.path.isdir(config.out):
        raise ValueError(f"--out {config.out}: exists and is not a folder")
    if config.augment != "none":
        augmentation(config)  # its own checks (e.g. no flips for digits)


def check_model_fits(model, config):
    """Run ``model`` on one blank 28x28 image (eval mode, no graph) so that a model the
    --model-config overrides made unfit fails here, with a reason, rather than mid-epoch."""
    import shendu
    was_training = model.training
    model.eval()
    try:
        with shendu.no_grad():
            out = model(shendu.zeros(1, 1, 28, 28))
    except (RuntimeError, ValueError, TypeError) as err:
        raise ValueError(f"--model {config.model} cannot run on 1x28x28 images: "
                         f"{_one_line(err)}") from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (1, 10):
        raise ValueError(f"--model {config.model} gives outputs of shape {tuple(out.shape)[1:]} "
                         "per image, not the 10 class scores these datasets need")


def _one_line(err, limit=1000):
    """``err``'s message on one line, cut at ``limit`` characters (a state_dict mismatch
    lists every key)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_resume(config, model):
    """Refuse a --resume checkpoint that does not belong to this model and optimizer."""
    from shendu import serialization
    state = serialization.load(config.resume)
    if not isinstance(state, dict) or "model" not in state or "optimizer" not in state:
        raise ValueError(f"--resume {config.resume} is not a `shendu train` checkpoint")
    meta = state.get("meta") or {}
    saved = meta.get("config", {}) if isinstance(meta, dict) else {}
    for name in ("model", "dataset", "model_config", "optimizer"):
        if name in saved and saved[name] != getattr(config, name):
            raise ValueError(f"--resume {config.resume} is a checkpoint of {_flag(name)} "
                             f"{saved[name]}, not {getattr(config, name)}; pass "
                             f"{_flag(name)} {saved[name]} or start a new run")
    try:
        build_model(config).load_state_dict(state["model"])
        make_optimizer(config, model.parameters()).load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ValueError(f"--resume {config.resume} does not fit --model {config.model} with "
                         f"--optimizer {config.optimizer}: {_one_line(err)}") from None


# --- data -------------------------------------------------------------------------------------

def load_data(config, log, normalize=None):
    """(train, val, test) datasets; tells the user when the shipped subset is used.

    ``normalize`` is (mean, std) for the images, by default the dataset's (NORMALIZE); eval
    passes the pair stored in the checkpoint."""
    from shendu import Generator
    from shendu.data import MNIST, FashionMNIST, Subset, random_split, transforms
    augment = augmentation(config) if config.augment != "none" else None  # bad flags fail first
    mean, std = normalize if normalize is not None else NORMALIZE[config.dataset]
    tf = transforms.Normalize(mean, std)

    def load(train, transform):
        if config.dataset == "mnist":
            data = MNIST(config.data_dir, train=train, transform=transform)
        elif config.subset:
            return FashionMNIST.subset(train, transform)
        else:  # an explicit --data-dir must hold the data: no fallback to the subset
            data = FashionMNIST(config.data_dir, train, transform,
                                allow_subset=config.data_dir is None)
        if config.data_dir is not None and not _same_folder(data.source, config.data_dir,
                                                            data.name):
            raise FileNotFoundError(f"--data-dir {config.data_dir} holds no {data.name} IDX "
                                    f"files (train-images-idx3-ubyte[.gz], ...); they were "
                                    f"found in {data.source} instead: pass that folder")
        return data

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


def _same_folder(source, data_dir, name):
    return os.path.realpath(source) in (os.path.realpath(data_dir),
                                        os.path.realpath(os.path.join(data_dir, name)))


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

class Interrupted(Exception):
    """Ctrl-C during training: the message says where the last checkpoint is."""


def train(config: TrainConfig, log=print) -> dict:
    """Run ``shendu train``; returns {'test_accuracy', 'test_loss', 'out', 'epochs'}.

    Every flag is checked (and the model, data, optimizer and any --resume checkpoint built
    and matched) before the output folder is created, so a bad flag writes nothing.
    """
    import shendu
    from shendu import nn
    from shendu.distributed.launch import TrainingRun
    from shendu.train import (CSVLogger, EarlyStopping, LRScheduler, ModelCheckpoint,
                              ProgressBar, TensorBoard, TerminateOnNaN, Trainer)

    check_train_config(config)
    run = TrainingRun(config.nproc, config.batch_size)  # under mpiexec: this rank's part
    log = run.log(log)
    shendu.manual_seed(config.seed)
    model = build_model(config)  # first: a bad --model-config fails before any file is written
    check_model_fits(model, config)
    if config.resume is not None:
        check_resume(config, model)
    from shendu.cli_viz import training_attack
    attack = training_attack(config)  # --adversarial-* are checked before anything is written
    train_set, val_set, test_set = load_data(config, log)
    optimizer = make_optimizer(config, model.parameters())
    train_loader = run.train_loader(train_set, config.seed + 1) if run.distributed else \
        _loader(train_set, config.batch_size, True, config.seed + 1)
    schedule = make_schedule(config, optimizer, len(train_loader))
    tensorboard = None
    if config.tensorboard:
        from shendu.train.loggers import _summary_writer_class
        if _summary_writer_class() is None:
            raise ImportError("--tensorboard needs tensorboardX: pip install "
                              "'shendu[tensorboard]'")
    out = config.out
    if out is None and config.resume is not None:
        out = os.path.dirname(os.path.abspath(config.resume))  # keep adding to the same run
    elif out is None:
        out = os.path.join("runs", f"{config.model}-{config.dataset}-"
                                   f"{time.strftime('%Y%m%d-%H%M%S')}")
    out = run.shared(out)  # rank 0's timestamp
    # what the run really used: the subset when the full set is missing, the capped
    # validation size, the optimizer's default lr
    used = replace(config, subset=bool(getattr(_base(train_set), "is_subset", False)),
                   val_size=len(val_set),
                   lr=config.lr if config.lr is not None else DEFAULT_LR[config.optimizer])
    if run.is_main:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(asdict(used), f, indent=2)
    log(f"{config.model}: {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{len(train_set):,} train / {len(val_set):,} val / {len(test_set):,} test; "
        f"writing to {out}")
    mode = "max" if config.monitor.endswith("accuracy") else "min"
    last = ModelCheckpoint(os.path.join(out, "last.st"))
    callbacks = [ProgressBar(), TerminateOnNaN(),
                 EarlyStopping(monitor=config.monitor, mode=mode, patience=config.patience,
                               restore_best_weights=True),
                 CSVLogger(os.path.join(out, "history.csv"), append=config.resume is not None),
                 ModelCheckpoint(os.path.join(out, "best.st"), monitor=config.monitor,
                                 mode=mode, save_best_only=True), last]
    if schedule is not None:
        callbacks.append(LRScheduler(schedule, per="batch"))
    if config.tensorboard:
        tensorboard = os.path.join(out, "tensorboard")
        callbacks.append(TensorBoard(tensorboard))
    from shendu.cli_doctor import add_doctor, finish_doctor
    callbacks, doctor = add_doctor(config, callbacks, log)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    trainer = Trainer(run.wrap(model), optimizer, loss_fn, callbacks=callbacks,
                      device=config.device, adversarial=attack, meta=checkpoint_meta(used))
    try:
        history = trainer.fit(train_loader, _loader(val_set, 1000), epochs=config.epochs,
                              resume_from=config.resume)
    except KeyboardInterrupt:
        where = (f"the last checkpoint is {last.last_saved} (resume with --resume "
                 f"{last.last_saved})" if last.last_saved else "no epoch finished, so no "
                 "checkpoint was written")
        raise Interrupted(f"interrupted; {where}") from None
    test = trainer.evaluate(_loader(test_set, 1000))
    if run.is_main:
        plot_curves(history, os.path.join(out, "curves.png"), log)
        finish_doctor(doctor, out, log)
    log(f"test accuracy: {test['accuracy']:.4f} (loss {test['loss']:.4f}) on "
        f"{len(test_set):,} test images, after {len(history.epoch)} "
        f"epoch{'s' if len(history.epoch) != 1 else ''}")
    if tensorboard is not None:
        log(f"TensorBoard event files in {tensorboard} (tensorboard --logdir {tensorboard})")
    return {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "out": out,
            "epochs": len(history.epoch)}


def _base(dataset):
    while hasattr(dataset, "dataset"):  # Subset of Subset of ... the dataset itself
        dataset = dataset.dataset
    return dataset


def checkpoint_meta(config):
    """What ``shendu eval`` needs to score a checkpoint with no other file: the model spec,
    the dataset, its normalisation and the data folder (absolute)."""
    data_dir = None if config.data_dir is None else os.path.abspath(config.data_dir)
    return {"kind": "shendu train", "config": {**asdict(config), "data_dir": data_dir},
            "normalize": list(NORMALIZE[config.dataset])}


def load_run(args, log=print):
    """(model, config, normalize) of ``args.checkpoint`` written by ``shendu train``.

    The model, dataset, normalisation and data folder come from the checkpoint's metadata
    (checkpoints from before it was stored fall back to the config.json beside the file);
    --model, --dataset, --data-dir and --limit-test in ``args`` override them. ``normalize``
    is the stored (mean, std), or None when the data set was overridden.
    """
    from shendu import serialization

    if not os.path.isfile(args.checkpoint):
        raise ValueError(f"--checkpoint {args.checkpoint}: no such file")
    if getattr(args, "limit_test", None) is not None and args.limit_test < 1:
        raise ValueError(f"--limit-test must be at least 1, got {args.limit_test}")
    state = serialization.load(args.checkpoint)
    meta = state.get("meta") if isinstance(state, dict) else None
    if isinstance(meta, dict) and "vocab" in meta:
        raise ValueError(f"{args.checkpoint} is a language-model checkpoint; use "
                         f"`shendu lm sample --checkpoint {args.checkpoint}`")
    names = {f.name for f in fields(TrainConfig)}
    if isinstance(meta, dict) and isinstance(meta.get("config"), dict):
        config = TrainConfig(**{k: v for k, v in meta["config"].items() if k in names})
    else:
        saved = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "config.json")
        if not os.path.exists(saved):
            raise ValueError(f"{args.checkpoint} holds no `shendu train` metadata and has no "
                             "config.json beside it; pass --model and --dataset")
        log(f"note: {args.checkpoint} predates checkpoint metadata; using {saved}")
        with open(saved) as f:
            config = TrainConfig(**{k: v for k, v in json.load(f).items() if k in names})
    if (args.data_dir is None and config.data_dir is not None
            and not os.path.isdir(config.data_dir)):
        raise ValueError(f"{args.checkpoint} was trained on the data in {config.data_dir}, "
                         "which is not here; pass --data-dir")
    wanted = getattr(args, "model", None)  # `shendu viz` has no --model
    if wanted is not None and isinstance(meta, dict) and wanted != config.model:
        raise ValueError(f"{args.checkpoint} is a checkpoint of --model {config.model}, not "
                         f"{wanted}; drop --model")
    for name in ("model", "dataset", "data_dir", "limit_test"):
        if getattr(args, name, None) is not None:
            setattr(config, name, getattr(args, name))
    config.subset = (config.subset or getattr(args, "subset", False)) and args.data_dir is None
    config.augment, config.resume, config.out = "none", None, None
    check_train_config(config)
    model = build_model(config)
    try:
        model.load_state_dict(state["model"] if "model" in state else state)
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"{args.checkpoint} does not fit --model {config.model}: "
                         f"{_one_line(err)}") from None
    same_data = getattr(args, "dataset", None) is None or not isinstance(meta, dict)
    normalize = meta.get("normalize") if same_data and isinstance(meta, dict) else None
    return model, config, normalize


def evaluate(args, log=print) -> dict:
    """Run ``shendu eval``: the test accuracy of a checkpoint written by ``shendu train``."""
    from shendu import nn
    from shendu.train import Trainer

    model, config, normalize = load_run(args, log)
    test_set = load_data(config, log, normalize)[2]
    trainer = Trainer(model, None, nn.CrossEntropyLoss(), device=args.device)
    test = trainer.evaluate(_loader(test_set, 1000))
    log(f"test accuracy: {test['accuracy']:.4f} (loss {test['loss']:.4f}) on "
        f"{len(test_set):,} test images of {config.dataset}")
    return test


def build_parser():
    parser = argparse.ArgumentParser(prog="shendu", description="shendu: deep learning on "
                                     "NumPy, checked against PyTorch")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_train_arguments(sub.add_parser("train", help="train a model (default: LeNet-5 on "
                                       "Fashion-MNIST)"))
    ev = sub.add_parser("eval", help="test accuracy of a checkpoint from `shendu train`")
    ev.add_argument("--checkpoint", required=True,
                    help="best.st or last.st of `shendu train` (it holds the model spec, "
                         "dataset and data folder)")
    ev.add_argument("--model", default=None, help="override the checkpoint's model")
    ev.add_argument("--dataset", default=None, choices=DATASETS,
                    help="override the checkpoint's dataset")
    ev.add_argument("--data-dir", default=None, help="override the checkpoint's data folder")
    ev.add_argument("--subset", action="store_true",
                    help="score on the Fashion-MNIST test subset shipped with shendu")
    ev.add_argument("--limit-test", type=int, default=None,
                    help="score only the first N test images")
    ev.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to compute")
    from shendu.cli_lm import add_lm_parser
    add_lm_parser(sub)
    from shendu.cli_viz import add_viz_parser
    add_viz_parser(sub)
    from shendu.cli_doctor import add_doctor_parser
    add_doctor_parser(sub)
    from shendu.cli_vision import add_vision_parsers
    add_vision_parsers(sub)
    from shendu.cli_lab import add_lab_parser
    add_lab_parser(sub)
    return parser


# what a failing command reports as one line (no traceback): bad flags and files, a missing
# optional package, an op refusing what a flag made of the model
USER_ERRORS = (OSError, ValueError, TypeError, RuntimeError, ImportError, Interrupted)


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
        elif args.command == "viz":
            from shendu.cli_viz import run_viz
            run_viz(args, log)
        elif args.command == "doctor":
            from shendu.cli_doctor import run_doctor
            run_doctor(args, log)
        elif args.command in ("detect", "segment"):
            from shendu.cli_vision import run_vision
            run_vision(args, log)
        elif args.command == "lab":
            from shendu.cli_lab import run_lab
            run_lab(args, log)
    except KeyboardInterrupt:  # outside a training loop (loading data, say)
        print(f"shendu {args.command}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        from shendu.distributed import launch
        return launch.report_error(f"shendu {args.command}: {_one_line(err)}",  # once, not
                                   130 if isinstance(err, Interrupted) else 2)  # per rank
    return 0


if __name__ == "__main__":
    sys.exit(main())
