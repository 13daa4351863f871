"""Training-step time of the classic CNNs, shendu vs PyTorch CPU, in one process.

One step = forward + cross-entropy + backward + SGD(momentum 0.9) step, batch 64 of random
32x32x3 images, for
  - resnet20: the CIFAR ResNet-20 (option-A shortcuts, BN), 0.27M parameters, 40.6M MACs/image;
  - vgg11_small: VGG-11 with BN at half width for 32x32 inputs, 2.4M parameters.
Each torch twin is the same architecture written in torch below, loaded with shendu's initial
weights. Steps alternate (shendu, torch, shendu, ...) after warm-up so that both see the same
machine load; the script prints the median step times and the ratio shendu/torch (target
<= 1.5). ``--profile`` adds the functions where shendu's step spends its time.
``--numpy-conv`` adds a third, alternating column: shendu with its compiled direct
convolution kernels off (conv._choose then picks only the NumPy reference layouts).
``--threads`` sets both torch's and shendu's thread counts.

Run: ``python benchmarks/cnn.py [--steps 10] [--threads 2] [--profile] [--numpy-conv]
[--device cpu|cuda]``.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as tF

import shendu
from _common import add_device_argument, check_device
from shendu.models import get_model
from shendu.ops import conv


class TorchBlock(tnn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.extra = planes - inplanes
        self.stride = stride

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.stride != 1 or self.extra:  # option A: subsample, zero-pad the new channels
            x = tF.pad(x[:, :, ::self.stride, ::self.stride],
                       (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return self.relu(out + x)


class TorchResNet20(tnn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.conv1 = tnn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        self.relu = tnn.ReLU(inplace=True)
        stages, inplanes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            stages.append(tnn.Sequential(TorchBlock(inplanes, planes, stride),
                                         *[TorchBlock(planes, planes, 1) for _ in range(2)]))
            inplanes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torch_small_vgg(cfg=(32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256)):
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(2, 2))
            continue
        layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU(inplace=True)]
        c = v
    model = tnn.Module()
    model.features = tnn.Sequential(*layers)
    model.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
    model.classifier = tnn.Sequential(
        tnn.Linear(c, c), tnn.ReLU(True), tnn.Dropout(0.5), tnn.Linear(c, c), tnn.ReLU(True),
        tnn.Dropout(0.5), tnn.Linear(c, 10))
    model.forward = lambda x: model.classifier(torch.flatten(model.avgpool(model.features(x)),
                                                             1))
    return model


def twins(name):
    shendu.manual_seed(0)
    ours = get_model(name, in_channels=3, num_classes=10)
    theirs = TorchResNet20() if name == "resnet20" else torch_small_vgg()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                            for k, v in ours.state_dict().items()})
    return ours.train(), theirs.train()


def stepper(lib, model, x, y, device="cpu"):
    """One SGD-momentum training step of ``model`` on ``device``; ``lib`` is shendu or torch,
    which spell every call here the same way. The step returns its loss."""
    model.to(device)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = lib.nn.CrossEntropyLoss()
    x, y = lib.from_numpy(x).to(device), lib.from_numpy(y).to(device)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def without_direct_conv(step):
    """The step with conv._choose never picking the compiled direct kernels."""
    def plain():
        limit, conv._DIRECT_MAX_CHANNELS = conv._DIRECT_MAX_CHANNELS, -1
        try:
            return step()
        finally:
            conv._DIRECT_MAX_CHANNELS = limit
    return plain


def timed(step):
    start = time.perf_counter()
    step().item()  # waits for a GPU to finish the step (on the CPU it is already done)
    return time.perf_counter() - start


def profile(step, top):
    prof = cProfile.Profile()
    prof.enable()
    step()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start - 1:start + top + 1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per framework")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg11_small"])
    parser.add_argument("--profile", action="store_true", help="show shendu's hot functions")
    parser.add_argument("--numpy-conv", action="store_true",
                        help="also time shendu with the direct conv kernels off")
    add_device_argument(parser)
    args = parser.parse_args()
    check_device(args.device, __file__)
    torch.set_num_threads(args.threads)
    shendu.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch_size).astype(np.int64)
    print(f"batch {args.batch_size} x 3 x 32 x 32, SGD momentum 0.9, threads "
          f"{args.threads}, median of {args.steps} alternating steps, device {args.device}")
    extra = f"{'np-conv ms':>11}{'ratio':>7}" if args.numpy_conv else ""
    print(f"{'model':12}{'shendu ms':>11}{'torch ms':>10}{'ratio':>7}{extra}")
    for name in args.models:
        ours, theirs = twins(name)
        step_ours = stepper(shendu, ours, x, y, args.device)
        step_theirs = stepper(torch, theirs, x, y, args.device)
        steps = [step_ours, step_theirs]
        if args.numpy_conv:
            steps.append(without_direct_conv(step_ours))
        for _ in range(args.warmup):
            for step in steps:
                step()
        times = [[] for _ in steps]
        for _ in range(args.steps):
            for step, record in zip(steps, times):
                record.append(timed(step))
        a, b, *c = (statistics.median(t) for t in times)
        extra = f"{1e3 * c[0]:11.1f}{c[0] / b:7.2f}" if c else ""
        print(f"{name:12}{1e3 * a:11.1f}{1e3 * b:10.1f}{a / b:7.2f}{extra}")
        if args.profile:
            print(profile(step_ours, 12))


if __name__ == "__main__":
    main()
