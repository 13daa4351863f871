"""Every training-step workload, shendu vs PyTorch, side by side in one table of ratios.

Each workload is one float32 training step (forward, loss, backward, optimizer step; the
conv2d case is forward+backward only), built with the same shapes and optimizer in both
frameworks:
  mlp        784-256-128-10 ReLU MLP, batch 64, Adam                       (here)
  conv2d     conv2d N=64 3->32 at 32x32, k3 p1, forward+backward           (ops.py)
  lenet5     LeNet-5 (tanh, max-pool), batch 64, SGD momentum 0.9          (train.py, cnn.py)
  mnist_cnn  pytorch/examples' MNIST CNN: conv 1->32->64 3x3 on 28x28, max-pool, dropout,
             fc 9216-128-10, log-softmax + NLL, batch 64, Adadelta lr 1.0  (here)
  vgg        small VGG-11 with BN, 32x32, batch 64, SGD momentum 0.9       (cnn.py)
  resnet20   CIFAR ResNet-20, 32x32, batch 64, SGD momentum 0.9            (cnn.py)
  lstm       char-LSTM h256, seq 64, batch 32, Adam, clip 1.0              (lm.py)
  gpt        tiny GPT 4 layers / 4 heads / 128, block 64, batch 32, AdamW  (lm.py)
The builders and steppers are imported from the scripts named on the right, which stay
runnable alone. Per workload: warm up both, then alternate shendu and torch steps (the order
flips every repeat, so machine noise hits both) and report the medians and their ratio
shendu/torch (the issue's target: <= 1.3). ``--busy`` keeps one core busy with a spinning
subprocess for the whole run, the "loaded machine" condition of the target.

Run: ``python benchmarks/all.py [--threads 2] [--repeats 15] [--warmup 2] [--only NAME ...]
[--busy] [--quick] [--json PATH] [--device cpu|cuda]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# torch's OpenMP workers spin after each op by default and starve NumPy's BLAS threads when
# the two alternate in one process (see lm.py); must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# shendu's own default (shendu/backend.py), which NumPy imported first would bypass: OpenBLAS's
# idle workers sleep instead of spinning (they also slowed torch's steps between ours)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import shendu  # noqa: E402
import shendu.nn.functional as F  # noqa: E402
from shendu import nn  # noqa: E402
from shendu.models import LeNet5  # noqa: E402

import cnn  # noqa: E402
import lm  # noqa: E402
import ops  # noqa: E402
import train  # noqa: E402
from _common import add_device_argument, check_device, synchronize  # noqa: E402


def _copy_weights(ours, theirs):
    """Load shendu's initial weights into the torch twin (same parameter names)."""
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})


def _classifier_steppers(ours, theirs, x, y, optimizer, loss, device):
    """(shendu step, torch step) for a classifier: ``optimizer(lib, params)`` builds the
    optimizer and ``loss(lib)`` the loss function, both spelled the same in the two libs."""
    def make(lib, model):
        model.to(device).train()
        opt = optimizer(lib, model.parameters())
        loss_fn = loss(lib)
        bx, by = lib.from_numpy(x).to(device), lib.from_numpy(y).to(device)

        def step():
            opt.zero_grad()
            out = loss_fn(model(bx), by)
            out.backward()
            opt.step()
            return out
        return step
    return make(shendu, ours), make(torch, theirs)


def _batch(rng, shape, classes=10):
    x = rng.standard_normal(shape).astype(np.float32)
    return x, rng.integers(0, classes, shape[0]).astype(np.int64)


# --- the MLP (no other script has it) ---------------------------------------------------

def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(784, 256), lib.nn.ReLU(), lib.nn.Linear(256, 128),
                             lib.nn.ReLU(), lib.nn.Linear(128, 10))


def make_mlp(rng, device):
    shendu.manual_seed(0)
    ours, theirs = _mlp(shendu), _mlp(torch)
    _copy_weights(ours, theirs)
    x, y = _batch(rng, (64, 784))
    return _classifier_steppers(ours, theirs, x, y, lambda lib, p: lib.optim.Adam(p, lr=1e-3),
                                lambda lib: lib.nn.CrossEntropyLoss(), device)


# --- pytorch/examples' MNIST CNN (mnist/main.py), likewise new here ----------------------

# shendu's side is examples/mnist.py's Net itself (the script written with torch's spellings)
from examples.mnist import Net as MnistNet  # noqa: E402


class TorchMnistNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(1, 32, 3, 1)
        self.conv2 = tnn.Conv2d(32, 64, 3, 1)
        self.dropout1 = tnn.Dropout(0.25)
        self.dropout2 = tnn.Dropout(0.5)
        self.fc1 = tnn.Linear(9216, 128)
        self.fc2 = tnn.Linear(128, 10)

    def forward(self, x):
        x = TF.max_pool2d(TF.relu(self.conv2(TF.relu(self.conv1(x)))), 2)
        x = TF.relu(self.fc1(torch.flatten(self.dropout1(x), 1)))
        return TF.log_softmax(self.fc2(self.dropout2(x)), dim=1)


def make_mnist_cnn(rng, device):
    shendu.manual_seed(0)
    ours, theirs = MnistNet(), TorchMnistNet()
    _copy_weights(ours, theirs)
    x, y = _batch(rng, (64, 1, 28, 28))
    return _classifier_steppers(ours, theirs, x, y,
                                lambda lib, p: lib.optim.Adadelta(p, lr=1.0),
                                lambda lib: lib.nn.NLLLoss(), device)


# --- the workloads other scripts already build --------------------------------------------

def make_conv2d(rng, device):
    return ops.CASES["conv2d N=64 3->32 32x32 k3 p1"](rng, device)


def make_lenet5(rng, device):
    shendu.manual_seed(0)
    ours, theirs = LeNet5(activation="tanh"), train.torch_lenet("tanh")
    train.copy_weights(ours, theirs)
    x, y = _batch(rng, (64, 1, 28, 28))
    return cnn.stepper(shendu, ours.train(), x, y, device), cnn.stepper(torch, theirs.train(),
                                                                         x, y, device)


def _make_cnn(name):
    def make(rng, device):
        ours, theirs = cnn.twins(name)
        x, y = _batch(rng, (64, 3, 32, 32))
        return cnn.stepper(shendu, ours, x, y, device), cnn.stepper(torch, theirs, x, y, device)
    return make


def _make_lm(which):
    return lambda rng, device: lm.steppers(which, rng, device)


WORKLOADS = {
    "mlp": make_mlp,
    "conv2d": make_conv2d,
    "lenet5": make_lenet5,
    "mnist_cnn": make_mnist_cnn,
    "vgg": _make_cnn("vgg11_small"),
    "resnet20": _make_cnn("resnet20"),
    "lstm": _make_lm("lstm"),
    "gpt": _make_lm("gpt"),
}


def _timed(step, device):
    start = time.perf_counter()
    step()
    synchronize(device)  # a GPU step is only done when its queue is
    return time.perf_counter() - start


def measure(step_ours, step_torch, repeats, warmup, device):
    """Median seconds per step of each, alternating; the order flips every repeat."""
    for _ in range(warmup):
        step_ours(), step_torch()
    synchronize(device)
    times = {"shendu": [], "torch": []}
    for k in range(repeats):
        pair = [("shendu", step_ours), ("torch", step_torch)]
        for name, step in pair if k % 2 == 0 else pair[::-1]:
            times[name].append(_timed(step, device))
    return statistics.median(times["shendu"]), statistics.median(times["torch"])


def start_busy():
    """A separate process spinning on one core until stopped (``--busy``)."""
    proc = subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    proc.stdout.readline()  # spinning from here on, before the first step of either
    return proc


def stop_busy(proc):
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _load():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=_positive_int, default=2,
                        help="torch and shendu thread count (default 2)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help="timed steps per framework and workload (default 15; 3 with "
                             "--quick)")
    parser.add_argument("--warmup", type=_non_negative_int, default=None,
                        help="untimed steps of each first (default 2; 1 with --quick)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help=f"run only these workloads, of: {' '.join(WORKLOADS)}")
    parser.add_argument("--busy", action="store_true",
                        help="keep one core busy with a spinning subprocess during the run")
    parser.add_argument("--quick", action="store_true",
                        help="few repeats: a smoke test, not a measurement")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results to this JSON file")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    unknown = [name for name in args.only or () if name not in WORKLOADS]
    if unknown:
        parser.error(f"--only: unknown workload {', '.join(unknown)}; choose from "
                     f"{', '.join(WORKLOADS)}")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 15
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    return args


def main(argv=None):
    args = parse_args(argv)
    check_device(args.device, __file__)
    torch.set_num_threads(args.threads)
    shendu.set_num_threads(args.threads)
    names = args.only or list(WORKLOADS)
    busy = start_busy() if args.busy else None
    results = []
    try:
        load_start = _load()
        print(f"threads {args.threads}, {args.warmup} warm-up + median of {args.repeats} "
              f"alternating steps, device {args.device}, busy core: "
              f"{'yes' if busy else 'no'}")
        print(f"load average at start: {load_start}")
        print(f"| {'workload':10} | {'shendu ms':>9} | {'torch ms':>9} | {'ratio':>6} |")
        print(f"|{'-' * 12}|{'-' * 11}|{'-' * 11}|{'-' * 8}|", flush=True)
        for name in names:
            step_ours, step_torch = WORKLOADS[name](np.random.default_rng(0), args.device)
            ours, theirs = measure(step_ours, step_torch, args.repeats, args.warmup,
                                   args.device)
            results.append({"workload": name, "shendu_ms": 1e3 * ours,
                            "torch_ms": 1e3 * theirs, "ratio": ours / theirs})
            print(f"| {name:10} | {1e3 * ours:9.2f} | {1e3 * theirs:9.2f} | "
                  f"{ours / theirs:6.2f} |", flush=True)
        load_end = _load()
    finally:
        if busy is not None:
            stop_busy(busy)
    print(f"load average at end: {load_end}")
    product_threads = shendu.threads.product_threads() if args.device == "cpu" else None
    if product_threads is not None:
        print(f"shendu's large products ran on {product_threads} BLAS thread(s): the "
              "cores other processes left free, measured once (shendu.threads)")
    worst = max(results, key=lambda r: r["ratio"])
    print(f"max ratio {worst['ratio']:.2f} ({worst['workload']}); target <= 1.3: "
          f"{'met' if worst['ratio'] <= 1.3 else 'missed'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "repeats": args.repeats,
                       "warmup": args.warmup, "busy": args.busy, "device": args.device,
                       "load_start": load_start, "load_end": load_end,
                       "product_threads": product_threads,
                       "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
