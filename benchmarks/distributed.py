"""Data-parallel scaling: training samples/s on 1 and 2 ranks (1 thread each), shendu's
DistributedDataParallel over MPI against PyTorch's DistributedDataParallel over gloo.

    python benchmarks/distributed.py [--models lenet5,resnet20] [--batch 64] [--steps 20]
                                     [--bucket-mb 25] [--device cpu|cuda]

For each model and framework it runs ``mpiexec -n 1`` and ``mpiexec -n 2`` on this script's
worker mode with the same global batch (each of 2 ranks takes half; the torch workers take
their rank from mpiexec and join a gloo group over TCP on this host, so both frameworks get
the same process placement and core binding) and prints samples/s, the scaling
efficiency (rate on 2 ranks / twice the rate on 1) and the fraction of gradient communication
hidden behind backward: 1 - exposed / alone, where "exposed" is the time from the moment the
slower rank launched its last bucket to the moment this rank holds all reduced gradients (so
waiting for a slower rank does not count as communication; the clocks are one host's), and
"alone" is what the same all-reduces take one after another, blocking, measured right after.
The last column is the time ratio shendu/torch on 2 ranks (torch's samples/s over shendu's;
above 1 means shendu is slower). As on 1 process, the model is not wrapped on 1 rank.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _common import add_device_argument, check_device, synchronize  # noqa: E402


def worker(args):
    import shendu
    from shendu import distributed as dist
    from shendu import nn, optim
    from shendu.models import get_model
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    shendu.manual_seed(0)
    model = get_model(args.model, in_channels=1, num_classes=10).to(args.device)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb) if world > 1 \
        else model
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    share = args.batch // world
    gen = shendu.Generator(seed=rank)
    x = shendu.randn(share, 1, 28, 28, generator=gen).to(args.device)
    y = shendu.randint(0, 10, (share,), generator=gen).to(args.device)

    def step():
        optimizer.zero_grad()
        loss_fn(ddp(x), y).backward()
        optimizer.step()
        synchronize(args.device)

    for _ in range(3):
        step()
    times, exposed = [], []
    for _ in range(args.steps):
        dist.barrier()  # time each step from a common start
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if world > 1:
            exposed.append(exposed_communication(ddp.comm_stats))
    result = {"model": args.model, "world": world, "step_s": statistics.median(times),
              "samples_per_s": args.batch / statistics.median(times)}
    if world > 1:
        result["wait_s"] = statistics.median(exposed)
        result["comm_s"] = blocking_allreduce_time(ddp, args.steps)
        result["buckets"] = len(ddp._buckets)
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


def torch_worker(args):
    """The same measurement with torch: the twin model, torch's DDP over gloo."""
    import torch
    import torch.distributed as tdist
    from cnn import TorchResNet20
    from train import torch_lenet
    torch.set_num_threads(1)
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
    world = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1")))
    twins = {"lenet5": lambda: torch_lenet("tanh"),
             "resnet20": lambda: TorchResNet20(in_channels=1)}
    if args.model not in twins:
        sys.exit(f"benchmarks/distributed.py: no torch twin for {args.model!r}; "
                 f"have {', '.join(twins)}")
    torch.manual_seed(0)
    model = twins[args.model]().to(args.device).train()
    if world > 1:
        tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                                 rank=rank, world_size=world)
        ddp = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    else:
        ddp = model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    share = args.batch // world
    gen = torch.Generator().manual_seed(rank)
    x = torch.randn(share, 1, 28, 28, generator=gen).to(args.device)
    y = torch.randint(0, 10, (share,), generator=gen).to(args.device)

    def step():
        optimizer.zero_grad()
        loss_fn(ddp(x), y).backward()
        optimizer.step()
        synchronize(args.device)

    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):
        if world > 1:
            tdist.barrier()  # time each step from a common start
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if rank == 0:
        print("RESULT " + json.dumps({"model": args.model, "world": world,
                                      "step_s": statistics.median(times),
                                      "samples_per_s": args.batch / statistics.median(times)}),
              flush=True)
    if world > 1:
        tdist.destroy_process_group()


def exposed_communication(stats):
    """Seconds from the last rank's last bucket launch to this rank's reduced gradients."""
    from shendu import backend
    from shendu import distributed as dist
    last_ready = backend.namespace("cpu").array([stats["ready_at"]])
    dist.all_reduce(last_ready, op=dist.ReduceOp.MAX)
    return max(0.0, stats["done_at"] - float(last_ready[0]))


def blocking_allreduce_time(ddp, repeats):
    """Median time of all-reducing every bucket's gradients one after another, blocking."""
    from shendu import backend
    from shendu import distributed as dist
    flats = [backend.xp_of(b.params[0]._data).concatenate([p.grad._data.ravel()
                                                           for p in b.params])
             for b in ddp._buckets]
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        for flat in flats:
            dist.all_reduce(flat)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, model, world, framework="shendu"):
    from shendu.distributed.launch import mpiexec_command
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.path.dirname(HERE),
                                           os.environ.get("PYTHONPATH", "")]))
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # all ranks on this host: loopback
    command = mpiexec_command(world) + [sys.executable, os.path.abspath(__file__), "--worker",
                                        framework, "--model", model, "--batch", str(args.batch),
                                        "--steps", str(args.steps), "--bucket-mb",
                                        str(args.bucket_mb), "--device", args.device,
                                        "--port", str(free_port())]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"benchmarks/distributed.py: {framework} {model} on {world} rank(s) failed:\n"
                 f"{proc.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    add_device_argument(parser)
    parser.add_argument("--worker", choices=("shendu", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args) if args.worker == "shendu" else torch_worker(args)
    check_device(args.device, __file__)
    print(f"global batch {args.batch}, {args.steps} timed steps, bucket {args.bucket_mb:g} MB, "
          f"device {args.device}, 1 thread per rank, {os.cpu_count()} cores; shendu over MPI, "
          "torch DDP over gloo")
    print(f"{'model':<10} {'framework':<9} {'1 rank/s':>9} {'2 ranks/s':>10} {'efficiency':>11} "
          f"{'buckets':>8} {'alone ms':>9} {'exposed ms':>11} {'hidden':>7} {'ratio':>6}")
    for model in args.models.split(","):
        one, torch_one = launch(args, model, 1), launch(args, model, 1, "torch")
        two, torch_two = launch(args, model, 2), launch(args, model, 2, "torch")
        hidden = max(0.0, 1.0 - two["wait_s"] / two["comm_s"]) if two["comm_s"] > 0 else 0.0
        ratio = torch_two["samples_per_s"] / two["samples_per_s"]
        print(f"{model:<10} {'shendu':<9} {one['samples_per_s']:>9.0f} "
              f"{two['samples_per_s']:>10.0f} "
              f"{two['samples_per_s'] / (2 * one['samples_per_s']):>10.0%} "
              f"{two['buckets']:>8d} {1000 * two['comm_s']:>9.2f} "
              f"{1000 * two['wait_s']:>11.2f} {hidden:>6.0%} {ratio:>6.2f}")
        print(f"{'':<10} {'torch':<9} {torch_one['samples_per_s']:>9.0f} "
              f"{torch_two['samples_per_s']:>10.0f} "
              f"{torch_two['samples_per_s'] / (2 * torch_one['samples_per_s']):>10.0%}")
    print("ratio: time per step on 2 ranks, shendu / torch (above 1: shendu is slower)")


if __name__ == "__main__":
    main()
