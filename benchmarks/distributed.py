"""Data-parallel scaling: training samples/s on 1 and 2 MPI ranks (1 BLAS thread each).

    python benchmarks/distributed.py [--models lenet5,resnet20] [--batch 64] [--steps 20]
                                     [--bucket-mb 25] [--device cpu]

For each model it runs ``mpiexec -n 1`` and ``mpiexec -n 2`` on this script's worker mode with
the same global batch (each of 2 ranks takes half) and prints samples/s, the scaling
efficiency (rate on 2 ranks / twice the rate on 1) and the fraction of gradient communication
hidden behind backward: 1 - exposed / alone, where "exposed" is the time from the moment the
slower rank launched its last bucket to the moment this rank holds all reduced gradients (so
waiting for a slower rank does not count as communication; the clocks are one host's), and
"alone" is what the same all-reduces take one after another, blocking, measured right after.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


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


def launch(args, model, world):
    from shendu.distributed.launch import mpiexec_command
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([os.path.dirname(HERE),
                                           os.environ.get("PYTHONPATH", "")]))
    command = mpiexec_command(world) + [sys.executable, os.path.abspath(__file__), "--worker",
                                        "--model", model, "--batch", str(args.batch),
                                        "--steps", str(args.steps), "--bucket-mb",
                                        str(args.bucket_mb), "--device", args.device]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"benchmarks/distributed.py: {model} on {world} rank(s) failed:\n"
                 f"{proc.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import shendu
    if args.device == "cuda" and not shendu.cuda_available():
        sys.exit("benchmarks/distributed.py: --device cuda needs CuPy and an NVIDIA GPU "
                 "(pip install 'shendu[gpu]')")
    print(f"global batch {args.batch}, {args.steps} timed steps, bucket {args.bucket_mb:g} MB, "
          f"device {args.device}, 1 BLAS thread per rank, {os.cpu_count()} cores")
    print(f"{'model':<10} {'1 rank/s':>9} {'2 ranks/s':>10} {'efficiency':>11} "
          f"{'buckets':>8} {'alone ms':>9} {'exposed ms':>11} {'hidden':>7}")
    for model in args.models.split(","):
        one, two = launch(args, model, 1), launch(args, model, 2)
        efficiency = two["samples_per_s"] / (2 * one["samples_per_s"])
        hidden = max(0.0, 1.0 - two["wait_s"] / two["comm_s"]) if two["comm_s"] > 0 else 0.0
        print(f"{model:<10} {one['samples_per_s']:>9.0f} {two['samples_per_s']:>10.0f} "
              f"{efficiency:>10.0%} {two['buckets']:>8d} {1000 * two['comm_s']:>9.2f} "
              f"{1000 * two['wait_s']:>11.2f} {hidden:>6.0%}")


if __name__ == "__main__":
    main()
