"""LeNet-5 on Fashion-MNIST, one epoch, batch 64, SGD with momentum: shendu vs PyTorch CPU.

Both frameworks train the same architecture from the same initial weights on the same
batches, one after the other in this process; the script prints samples/s for each and the
time ratio shendu/torch (target <= 1.5). ``--device cuda`` runs both on the GPU; the images
stay on the host and each batch is copied there, as a data loader would.
Run: ``python benchmarks/train.py [--limit N] [--device cpu|cuda]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as tnn

import shendu
import shendu.nn
import shendu.optim
from _common import add_device_argument, check_device, synchronize
from shendu.data import load_fashion_mnist
from shendu.models import LeNet5


def torch_lenet(activation):
    act = tnn.Tanh if activation == "tanh" else tnn.ReLU
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), act(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), act(), tnn.MaxPool2d(2),
        tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84), act(),
        tnn.Linear(84, 10))


def copy_weights(ours, theirs):
    values = [torch.from_numpy(v.numpy().copy()) for v in ours.state_dict().values()]
    keys = list(theirs.state_dict().keys())
    theirs.load_state_dict(dict(zip(keys, values)))


def epoch_shendu(model, images, labels, order, batch_size, lr, device):
    model.to(device)
    opt = shendu.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = shendu.nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        x = shendu.from_numpy(images[idx]).to(device)
        y = shendu.from_numpy(labels[idx]).to(device)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    synchronize(device)
    return time.perf_counter() - start, float(loss.item())


def epoch_torch(model, images, labels, order, batch_size, lr, device):
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = tnn.CrossEntropyLoss()
    model.train()
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    order = torch.from_numpy(order)
    start = time.perf_counter()
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        x, y = images[idx].to(device), labels[idx].to(device)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    synchronize(device)
    return time.perf_counter() - start, float(loss.item())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="train on the first N samples")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--activation", default="tanh", choices=["tanh", "relu"])
    parser.add_argument("--threads", type=int, default=2)
    add_device_argument(parser)
    args = parser.parse_args()
    check_device(args.device, __file__)
    torch.set_num_threads(args.threads)

    data = load_fashion_mnist(train=True)
    images = (data.data.numpy().astype(np.float32) / 255.0)[:, None]  # (N, 1, 28, 28)
    labels = data.targets.numpy().astype(np.int64)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    order = np.random.default_rng(0).permutation(len(labels))
    print(f"data: {len(labels)} training images ({'subset' if data.is_subset else 'full'}), "
          f"batch {args.batch_size}, SGD momentum 0.9, torch threads {args.threads}, "
          f"device {args.device}")

    shendu.manual_seed(0)
    ours = LeNet5(activation=args.activation)
    theirs = torch_lenet(args.activation)
    copy_weights(ours, theirs)
    t_ours, loss_ours = epoch_shendu(ours, images, labels, order, args.batch_size, args.lr,
                                     args.device)
    t_theirs, loss_theirs = epoch_torch(theirs, images, labels, order, args.batch_size, args.lr,
                                        args.device)
    n = (len(order) // args.batch_size) * args.batch_size
    print(f"{'':8}{'seconds':>10}{'samples/s':>12}{'last loss':>11}")
    print(f"{'shendu':8}{t_ours:10.2f}{n / t_ours:12.0f}{loss_ours:11.4f}")
    print(f"{'torch':8}{t_theirs:10.2f}{n / t_theirs:12.0f}{loss_theirs:11.4f}")
    print(f"ratio shendu/torch (time): {t_ours / t_theirs:.2f}  "
          f"(throughput {t_theirs / t_ours:.2f}x torch's)")


if __name__ == "__main__":
    main()
