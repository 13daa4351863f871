"""What every benchmark here shares: the ``--device cpu|cuda`` flag and waiting for a GPU.

On ``--device cuda`` both frameworks run there (shendu on CuPy, torch CUDA); when either is
missing the script stops with one line instead of a traceback. GPU work is asynchronous, so a
timed region must end with ``synchronize(device)`` (a no-op on the CPU) to measure the work
rather than its launch.
"""
from __future__ import annotations

import os
import sys


def add_device_argument(parser):
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="both frameworks on this device (cuda: shendu on CuPy, torch "
                             "CUDA); default cpu")


def check_device(device, script):
    """Exit with one line when ``device`` is cuda and shendu or torch cannot use a GPU."""
    if device != "cuda":
        return
    import torch

    import shendu
    missing = [what for what, ok in (("CuPy and an NVIDIA GPU for shendu (pip install "
                                      "'shendu[gpu]')", shendu.cuda_available()),
                                     ("a CUDA build of torch", torch.cuda.is_available()))
               if not ok]
    if missing:
        sys.exit(f"benchmarks/{os.path.basename(script)}: --device cuda needs "
                 f"{' and '.join(missing)}")


def synchronize(device):
    """Wait until both frameworks' queued GPU work is done (nothing to wait for on the CPU)."""
    if device != "cuda":
        return
    import torch

    from shendu import backend
    torch.cuda.synchronize()
    backend.namespace("cuda").cuda.Device().synchronize()
