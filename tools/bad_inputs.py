"""Try the bad inputs of issue 15 (and more) on whichever shendu is importable; classify each.

    python tools/bad_inputs.py            # this checkout (set PYTHONPATH to it)
    PYTHONPATH=/path/to/other/checkout python tools/bad_inputs.py   # e.g. an older commit

Each case ends in one of:
    ok      a clear error naming the op or flag and what was expected (for the CLI: one line
            on stderr, non-zero exit, nothing written), or the right result;
    crash   a raw Python/NumPy message, a traceback, or an error only after files were written;
    silent  accepted with a wrong or meaningless result (or a NumPy warning).
It runs in a temporary folder and needs MNIST in /work/shared/data/mnist (or $MNIST_DIR) and
tiny Shakespeare in /work/shared/data (or $SHENDU_DATA).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np

import shendu
from shendu import cli, nn, optim, serialization
from shendu.optim import lr_scheduler
from shendu.train import Trainer

MNIST_DIR = os.environ.get("MNIST_DIR", "/work/shared/data/mnist")
TEXT = os.path.join(os.environ.get("SHENDU_DATA", "/work/shared/data"), "tinyshakespeare.txt")
TINY = ["--epochs", "1", "--limit-train", "128", "--limit-test", "50", "--val-size", "100"]
TINY_LM = ["--data", TEXT, "--max-steps", "2", "--eval-interval", "2", "--eval-batches", "1",
           "--block-size", "8", "--batch-size", "4", "--model", "lstm", "--hidden-size", "8",
           "--embed-dim", "4", "--sample-chars", "0"]
CASES = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


def expect_error(fn, *keywords):
    """ok when ``fn`` raises with every keyword in its message; silent when it returns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - classifying every failure is the point
            text = f"{type(err).__name__}: {err}"
            if all(k.lower() in str(err).lower() for k in keywords):
                return "ok", text
            return "crash", text
    return "silent", "accepted" + (f" ({caught[0].message})" if caught else "")


def param(*shape):
    return shendu.zeros(*shape, requires_grad=True)


def with_grad(p, values):
    p.grad = shendu.tensor(values)
    return p


# --- tensors and ops ---------------------------------------------------------------------------
def _assign(target, name, value):
    setattr(target, name, value)


case("p.grad = tensor of another shape")(
    lambda: expect_error(lambda: _assign(param(2), "grad", shendu.ones(3)), "shape"))
case("p.grad = tensor of another dtype")(
    lambda: expect_error(lambda: _assign(param(2), "grad", shendu.ones(2).double()), "dtype"))
case("p.grad = numpy array")(
    lambda: expect_error(lambda: _assign(param(2), "grad", np.ones(2)), "grad"))
case("gather index past the end")(
    lambda: expect_error(lambda: shendu.zeros(3, 4).gather(1, shendu.tensor([[4]])), "gather",
                         "4"))
case("gather negative index")(
    lambda: expect_error(lambda: shendu.zeros(3, 4).gather(1, shendu.tensor([[-1]])), "gather"))
case("gather index of another rank")(
    lambda: expect_error(lambda: shendu.zeros(3, 4).gather(1, shendu.tensor([0])), "gather"))
case("x[5] = 1 out of range")(
    lambda: expect_error(lambda: shendu.zeros(3, 4).__setitem__(5, 1.0), "setitem", "(3, 4)"))
case("x[0] = mis-shaped value")(
    lambda: expect_error(lambda: shendu.zeros(3, 4).__setitem__(0, shendu.ones(3)), "setitem",
                         "(3,)"))
case("x[7] out of range")(
    lambda: expect_error(lambda: shendu.zeros(3, 4)[7], "getitem", "(3, 4)"))
case("x.to('tpu')")(lambda: expect_error(lambda: shendu.ones(2).to("tpu"), "tpu", "cpu"))
case("x.to(dtype='tpu')")(
    lambda: expect_error(lambda: shendu.ones(2).to(dtype="tpu"), "tpu", "dtype"))
case("Linear.to('tpu')")(lambda: expect_error(lambda: nn.Linear(2, 2).to("tpu"), "tpu", "cpu"))
case("reshape to a wrong size")(
    lambda: expect_error(lambda: shendu.zeros(2, 3).reshape(4, 2), "reshape"))
case("matmul of mismatched shapes")(
    lambda: expect_error(lambda: shendu.zeros(2, 3) @ shendu.zeros(2, 3), "matmul"))
case("item() of many elements")(lambda: expect_error(lambda: shendu.zeros(3).item(), "item"))


@case("std of a constant input: gradient")
def _std_constant():
    x = shendu.full((4,), 1.5, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x.std().backward()
    grad = x.grad.numpy()
    if np.isnan(grad).any() or caught:
        return "silent", f"gradient {grad.tolist()} (torch: 0)"
    return ("ok", "gradient 0") if (grad == 0).all() else ("silent", f"gradient {grad}")


@case("logsumexp of all -inf")
def _logsumexp():
    x = shendu.full((2, 3), -math.inf)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = x.logsumexp(1).numpy()
    if caught:
        return "silent", f"NumPy warning: {caught[0].message}"
    return ("ok", "-inf, no warning") if (out == -np.inf).all() else ("silent", str(out))


# --- optimizers, schedulers, clipping ----------------------------------------------------------
for name, make, words in [
        ("Adam(lr='abc')", lambda: optim.Adam([param(2)], lr="abc"), ("learning rate",)),
        ("Adam(lr=nan)", lambda: optim.Adam([param(2)], lr=float("nan")), ("learning rate",)),
        ("Adam(betas=0.9)", lambda: optim.Adam([param(2)], betas=0.9), ("betas",)),
        ("Adam(eps=-1)", lambda: optim.Adam([param(2)], eps=-1.0), ("epsilon",)),
        ("SGD(lr=None)", lambda: optim.SGD([param(2)], lr=None), ("learning rate",)),
        ("SGD(momentum='0.9')", lambda: optim.SGD([param(2)], lr=0.1, momentum="0.9"),
         ("momentum",)),
        ("RMSprop(alpha=[0.9])", lambda: optim.RMSprop([param(2)], alpha=[0.9]), ("alpha",)),
        ("param group lr=-1", lambda: optim.SGD([{"params": [param(2)], "lr": -1}], lr=0.1),
         ("learning rate",)),
        ("param group betas=(0.9, 1.5)",
         lambda: optim.Adam([{"params": [param(2)], "betas": (0.9, 1.5)}]), ("beta",))]:
    case(name)(lambda make=make, words=words: expect_error(make, *words))


def _stepped_adam(shape=(2,)):
    p = with_grad(param(*shape), np.ones(shape, dtype=np.float32))
    opt = optim.Adam([p])
    opt.step()
    return opt


def _load_then_step(opt, state):
    opt.load_state_dict(state)
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = shendu.ones(*p.shape)
    opt.step()


case("SGD.load_state_dict(Adam's state)")(lambda: expect_error(
    lambda: _load_then_step(optim.SGD([param(2)], lr=0.1, momentum=0.9),
                            _stepped_adam().state_dict()), "SGD", "momentum"))
case("Adam.load_state_dict(SGD's state)")(lambda: expect_error(
    lambda: _load_then_step(optim.Adam([param(2)]),
                            optim.SGD([param(2)], lr=0.1).state_dict()), "Adam", "betas"))
case("Adam.load_state_dict(other shapes)")(lambda: expect_error(
    lambda: _load_then_step(optim.Adam([param(3)]), _stepped_adam().state_dict()),
    "load_state_dict", "(2,)", "(3,)"))
case("load_state_dict({'model': ...})")(lambda: expect_error(
    lambda: optim.Adam([param(2)]).load_state_dict({"model": {}}), "load_state_dict",
    "param_groups"))


def _schedule(make, steps=3):
    sched = make(optim.SGD([param(2)], lr=0.1, momentum=0.9))
    for _ in range(steps):
        sched.step() if not isinstance(sched, lr_scheduler.ReduceLROnPlateau) else \
            sched.step(1.0)
    lr = sched.optimizer.param_groups[0]["lr"]
    if not (isinstance(lr, float) and lr > 0 and math.isfinite(lr)):
        raise AssertionError(f"lr became {lr!r}")


for name, make, words in [
        ("StepLR(step_size=0)", lambda o: lr_scheduler.StepLR(o, step_size=0), ("step_size",)),
        ("StepLR(gamma='x')", lambda o: lr_scheduler.StepLR(o, 1, gamma="x"), ("gamma",)),
        ("StepLR(gamma=-0.5)", lambda o: lr_scheduler.StepLR(o, 1, gamma=-0.5), ("gamma",)),
        ("MultiStepLR(milestones=[-1])", lambda o: lr_scheduler.MultiStepLR(o, [-1]),
         ("milestones",)),
        ("ExponentialLR(gamma=0)", lambda o: lr_scheduler.ExponentialLR(o, 0), ("gamma",)),
        ("CosineAnnealingLR(T_max=0)", lambda o: lr_scheduler.CosineAnnealingLR(o, 0),
         ("T_max",)),
        ("LinearLR(total_iters=0)", lambda o: lr_scheduler.LinearLR(o, total_iters=0),
         ("total_iters",)),
        ("OneCycleLR(div_factor=0)",
         lambda o: lr_scheduler.OneCycleLR(o, 1.0, total_steps=10, div_factor=0),
         ("div_factor",)),
        ("ReduceLROnPlateau(patience=-1)",
         lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=-1), ("patience",)),
        ("ReduceLROnPlateau(factor='0.5')",
         lambda o: lr_scheduler.ReduceLROnPlateau(o, factor="0.5"), ("factor",))]:
    case(name)(lambda make=make, words=words: expect_error(lambda: _schedule(make), *words))


def _clip(call):
    p = with_grad(param(2), [3.0, -4.0])
    call([p])
    if p.grad.tolist() != [3.0, -4.0] and np.sign(p.grad.numpy()).tolist() != [1.0, -1.0]:
        raise AssertionError(f"gradient signs flipped: {p.grad.tolist()}")


case("clip_grad_norm_(max_norm=-1)")(lambda: expect_error(
    lambda: _clip(lambda p: nn.utils.clip_grad_norm_(p, -1.0)), "max_norm"))
case("clip_grad_norm_(max_norm='1')")(lambda: expect_error(
    lambda: _clip(lambda p: nn.utils.clip_grad_norm_(p, "1")), "max_norm"))
case("clip_grad_value_(-0.5)")(lambda: expect_error(
    lambda: _clip(lambda p: nn.utils.clip_grad_value_(p, -0.5)), "clip_value"))


# --- dtypes: the input must match the parameters (torch's rule) --------------------------------
for layer_name, make, shape in [
        ("Linear", lambda: nn.Linear(4, 3), (2, 4)),
        ("Conv2d", lambda: nn.Conv2d(2, 3, 3), (1, 2, 5, 5)),
        ("LSTM", lambda: nn.LSTM(4, 5), (3, 2, 4)),
        ("LayerNorm", lambda: nn.LayerNorm(4), (2, 4)),
        ("BatchNorm2d", lambda: nn.BatchNorm2d(2), (2, 2, 3, 3)),
        ("MultiheadAttention", lambda: nn.MultiheadAttention(8, 2), (3, 2, 8))]:
    for dtype in ("float64", "float16"):
        def run(make=make, shape=shape, dtype=dtype):
            x = shendu.randn(*shape).to(dtype)
            layer = make()
            return layer(x, x, x) if isinstance(layer, nn.MultiheadAttention) else layer(x)
        case(f"{layer_name} on {dtype} input (float32 weights)")(
            lambda run=run, dtype=dtype: expect_error(run, dtype, "float32"))


# --- the command line --------------------------------------------------------------------------
def run_cli(args):
    """(exit code, last stderr line, stdout, traceback or None) of ``cli.main(args)``."""
    out, err = io.StringIO(), io.StringIO()
    trace = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(args)
        except SystemExit as exit_:  # argparse
            code = exit_.code
        except BaseException as exc:  # noqa: BLE001
            code, trace = 1, f"{type(exc).__name__}: {exc}"
    lines = err.getvalue().strip().splitlines()
    return code, (lines[-1] if lines else ""), out.getvalue(), trace


def cli_error(args, *keywords, before=None):
    """ok: non-zero exit, one 'shendu ...:' line naming ``keywords``, no new files."""
    existing = set(os.listdir("."))
    if before:
        before()
        existing = set(os.listdir("."))
    code, last, _, trace = run_cli(args)
    written = sorted(set(os.listdir(".")) - existing)
    for path in written:
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    if trace:
        return "crash", f"traceback: {trace[:160]}"
    if code == 0:
        return "silent", "accepted (exit 0)" + (f", wrote {written}" if written else "")
    if written:
        return "crash", f"failed late, after writing {written}: {last[:140]}"
    if last.startswith("shendu") and all(k.lower() in last.lower() for k in keywords):
        return "ok", last
    return "crash", f"unclear: {last[:160]}"


for flags, words in [
        (["--epochs", "-1"], ("--epochs",)), (["--epochs", "0"], ("--epochs",)),
        (["--limit-train", "0"], ("--limit-train",)), (["--val-size", "0"], ("--val-size",)),
        (["--seed", "-1"], ("--seed",)), (["--patience", "-1"], ("--patience",)),
        (["--batch-size", "0"], ("--batch-size",)), (["--lr", "-0.1"], ("--lr",)),
        (["--weight-decay", "-1"], ("weight",)),
        (["--data-dir", "does-not-exist"], ("does-not-exist",)),
        (["--resume", "missing.st"], ("missing.st",)),
        (["--model", "alexnet"], ("alexnet",)), (["--model", "vgg11"], ("vgg11",)),
        (["--model", "gpt"], ("gpt",)), (["--model", "char_rnn"], ("char_rnn",)),
        (["--model-config", "input_size=32"], ("lenet5",)),
        (["--dataset", "mnist", "--subset"], ("--subset",)),
        (["--dataset", "mnist", "--augment", "flip"], ("mnist",))]:
    case("train " + " ".join(flags))(
        lambda flags=flags, words=words: cli_error(train_args(flags), *words))


def train_args(flags):
    """``shendu train`` with ``flags``, on the shipped subset unless they name other data,
    plus the tiny settings they do not give themselves."""
    own_data = {"--subset", "--data-dir", "mnist"} & set(flags)
    tiny = [x for i in range(0, len(TINY), 2) if TINY[i] not in flags for x in TINY[i:i + 2]]
    return ["train"] + ([] if own_data else ["--subset"]) + flags + tiny


case("train --limit-test 0 (after a full run)")(
    lambda: cli_error(["train", "--subset", "--out", "run", "--limit-test", "0"]
                      + TINY[:4] + TINY[6:], "--limit-test"))
case("train --data-dir of an empty folder")(
    lambda: cli_error(["train", "--data-dir", "empty"] + TINY, "empty",
                      before=lambda: os.makedirs("empty", exist_ok=True)))
case("lm train --seed -1")(lambda: cli_error(["lm", "train", "--seed", "-1"] + TINY_LM, "seed"))
case("lm train --lr -1")(lambda: cli_error(["lm", "train", "--lr", "-1"] + TINY_LM, "-1.0"))
case("lm train --val-fraction 0")(
    lambda: cli_error(["lm", "train", "--val-fraction", "0"] + TINY_LM, "val_fraction"))
case("lm train --dropout 1.5")(
    lambda: cli_error(["lm", "train", "--dropout", "1.5"] + TINY_LM, "dropout"))
case("lm train --data missing.txt")(
    lambda: cli_error(["lm", "train"] + TINY_LM + ["--data", "missing.txt"], "missing.txt"))


def _trained(name, args):
    """A finished tiny run in folder ``name`` (made once per process)."""
    if not os.path.exists(os.path.join(name, "last.st")):
        code, last, out, trace = run_cli(args + ["--out", name])
        assert code == 0 and trace is None, (last, trace)
        with open(os.path.join(name, "stdout.txt"), "w") as f:
            f.write(out)
    return name


def mnist_run():
    return _trained("mnist-run", ["train", "--dataset", "mnist", "--data-dir", MNIST_DIR] + TINY)


@case("train --resume of another model's checkpoint")
def _resume_other():
    run = mnist_run()
    config = open(os.path.join(run, "config.json")).read()
    verdict = cli_error(["train", "--dataset", "mnist", "--data-dir", MNIST_DIR, "--model",
                         "mlp", "--resume", os.path.join(run, "last.st")] + TINY, "lenet5")
    if open(os.path.join(run, "config.json")).read() != config:
        return "crash", "rewrote the run's config.json; " + verdict[1][:120]
    return verdict


@case("eval --model resnet20 of a lenet5 checkpoint")
def _eval_other():
    return cli_error(["eval", "--checkpoint", os.path.join(mnist_run(), "best.st"), "--model",
                      "resnet20"], "resnet20")


@case("eval of a copied best.st (no config.json beside it)")
def _eval_copied():
    run = mnist_run()
    trained = [line for line in open(os.path.join(run, "stdout.txt"))
               if line.startswith("test accuracy")][0].split()[2]
    os.makedirs("copied", exist_ok=True)
    shutil.copy(os.path.join(run, "best.st"), "copied/best.st")
    code, last, out, trace = run_cli(["eval", "--checkpoint", "copied/best.st"])
    if trace:
        return "crash", trace[:160]
    if code != 0:
        return "crash", f"refused: {last[:140]}"
    scored = [line for line in out.splitlines() if line.startswith("test accuracy")][0]
    if scored.split()[2] != trained:
        return "silent", f"scored {scored.split()[2]}, trained run scored {trained}: {scored}"
    return "ok", scored


@case("eval of a language-model checkpoint")
def _eval_lm():
    if not os.path.exists("lm-run/model.st"):
        code, last, _, trace = run_cli(["lm", "train", "--out", "lm-run"] + TINY_LM)
        assert code == 0 and trace is None, (last, trace)
    return cli_error(["eval", "--checkpoint", "lm-run/model.st"], "lm sample")


@case("Ctrl-C during shendu train")
def _ctrl_c():
    real = Trainer._train_epoch

    def interrupted(self, loader, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(self, loader, epoch)

    Trainer._train_epoch = interrupted
    try:
        code, last, _, trace = run_cli(["train", "--subset", "--out", "ctrl-c"] + TINY[2:]
                                       + ["--epochs", "3"])
    finally:
        Trainer._train_epoch = real
    kept = os.path.exists("ctrl-c/last.st") and serialization.load("ctrl-c/last.st")["epoch"] == 0
    if trace:
        return "crash", f"traceback: {trace[:100]}; last.st kept: {kept}"
    if code != 0 and "last.st" in last and kept:
        return "ok", last
    return "crash", f"exit {code}: {last[:140]}; last.st kept: {kept}"


def main():
    work = tempfile.mkdtemp(prefix="shendu-bad-inputs-")
    os.chdir(work)
    counts = {"ok": 0, "crash": 0, "silent": 0}
    print(f"shendu from {os.path.dirname(shendu.__file__)}; {len(CASES)} cases; in {work}")
    for name, fn in CASES:
        try:
            verdict, detail = fn()
        except Exception as err:  # noqa: BLE001 - the harness itself must not stop
            verdict, detail = "crash", f"harness: {type(err).__name__}: {err}"
        counts[verdict] += 1
        print(f"{verdict:6s} | {name:52s} | {' '.join(str(detail).split())[:150]}")
    print(f"total {len(CASES)}: ok {counts['ok']}, crash {counts['crash']}, "
          f"silent {counts['silent']}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
