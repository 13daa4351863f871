"""shendu.distributed: 2 MPI ranks with half batches each equal 1 process with the whole batch.

The distributed side runs as ``mpiexec -n 2 python tests/distributed_worker.py`` (one launch
for all training scenarios, a few seconds); the single-process references run here.
"""
import io
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import shendu
from shendu import distributed as dist
from shendu import nn, optim
from shendu.distributed import launch
from shendu.train import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import distributed_worker as worker  # noqa: E402

needs_mpi = pytest.mark.skipif(shutil.which("mpiexec") is None or not launch.mpi4py_available(),
                               reason="needs the 'distributed' extra (mpi4py, Open MPI)")


def _mpiexec(out_dir, scenario, timeout=120):
    command = launch.mpiexec_command(2) + [sys.executable, os.path.join(HERE,
                                                                        "distributed_worker.py"),
                                          str(out_dir), scenario]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE),
                                          os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.monotonic() - start


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the 2 ranks wrote, as [rank0 dict, rank1 dict], and the output folder."""
    out = tmp_path_factory.mktemp("ddp")
    proc, _ = _mpiexec(out, "train")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [shendu.load(os.path.join(out, f"train-rank{r}.st")) for r in (0, 1)], out


def _reference(kind):
    """One process, the whole batch of 8 per step, rank 0's initial weights."""
    shendu.manual_seed(100)
    model = worker.make_model(kind)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = worker.make_data(kind)
    for step in range(worker.STEPS):
        batch = slice(step * worker.BATCH, (step + 1) * worker.BATCH)
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model


@needs_mpi
@pytest.mark.parametrize("kind", ["mlp", "cnn", "lstm"])
def test_two_ranks_with_half_batches_match_one_process(ranks, kind):
    results, _ = ranks
    reference = _reference(kind).state_dict()
    moved = 0.0
    for name, value in reference.items():
        for rank in (0, 1):
            np.testing.assert_allclose(results[rank][f"{kind}/{name}"].numpy(), value.numpy(),
                                       rtol=1e-6, atol=1e-6, err_msg=f"{kind} {name} rank {rank}")
    shendu.manual_seed(100)
    for name, value in worker.make_model(kind).state_dict().items():
        moved = max(moved, float(np.abs(value.numpy() - reference[name].numpy()).max()))
    assert moved > 1e-2, "the reference did not train: the comparison would prove nothing"


@needs_mpi
def test_no_sync_accumulates_locally_then_reduces_the_sum(ranks):
    results, _ = ranks
    shendu.manual_seed(7)
    model = worker.make_model("mlp")
    x, y = worker.make_data("mlp")
    half, local = worker.BATCH // 2, []
    for rank in (0, 1):
        model.zero_grad()
        nn.CrossEntropyLoss()(model(x[rank * half:(rank + 1) * half]),
                              y[rank * half:(rank + 1) * half]).backward()
        local.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
    model.zero_grad()
    nn.CrossEntropyLoss()(model(x[worker.BATCH:2 * worker.BATCH]),
                          y[worker.BATCH:2 * worker.BATCH]).backward()
    second = {n: p.grad.numpy() for n, p in model.named_parameters()}
    for name in second:
        for rank in (0, 1):
            np.testing.assert_allclose(results[rank][f"no_sync_local/{name}"].numpy(),
                                       local[rank][name], rtol=1e-10, atol=1e-12)
            expected = (local[0][name] + local[1][name]) / 2 + second[name]
            np.testing.assert_allclose(results[rank][f"no_sync_synced/{name}"].numpy(),
                                       expected, rtol=1e-10, atol=1e-12)


@needs_mpi
def test_collectives(ranks):
    results, _ = ranks
    for rank in (0, 1):
        r = {k[len("comm/"):]: v.numpy() for k, v in results[rank].items()
             if k.startswith("comm/")}
        np.testing.assert_array_equal(r["all_reduce_sum"], [3.0, 6.0, 9.0])
        np.testing.assert_array_equal(r["all_reduce_max"], [2.0, 4.0])
        np.testing.assert_array_equal(r["all_reduce_avg"], np.full((2, 2), 0.5))
        np.testing.assert_array_equal(r["broadcast"], np.arange(4) + 10.0)
        np.testing.assert_array_equal(r["all_gather"], [[0, 1, 2], [100, 101, 102]])
        np.testing.assert_array_equal(r["strided"], [2.0, 2.0, 2.0])


@needs_mpi
@pytest.mark.parametrize("n", [10, 11])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_covers_the_data_once_per_epoch(ranks, n, drop_last):
    results, _ = ranks
    orders = []
    for epoch in (0, 1):
        shares = [results[r][f"sampler/n{n}-drop{int(drop_last)}-epoch{epoch}"].numpy()
                  for r in (0, 1)]
        assert len(shares[0]) == len(shares[1])  # equal shares: no rank waits for another
        together = np.concatenate(shares)
        if drop_last:
            assert len(together) == n - n % 2 and len(set(together)) == len(together)
        else:  # every index once, plus the padding that evens out the shares
            assert set(together) == set(range(n)) and len(together) == n + n % 2
        orders.append(together)
    assert not np.array_equal(orders[0], orders[1]), "set_epoch did not reshuffle"


def test_sampler_without_a_process_group_matches_torch():
    torch_data = pytest.importorskip("torch.utils.data")
    for n, replicas, drop_last in ((10, 3, False), (10, 3, True), (4, 3, False)):
        for rank in range(replicas):
            ours = dist.DistributedSampler(range(n), replicas, rank, shuffle=False,
                                           drop_last=drop_last)
            theirs = torch_data.DistributedSampler(range(n), replicas, rank, shuffle=False,
                                                   drop_last=drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
    with pytest.raises(ValueError, match="rank must be in"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)


@needs_mpi
def test_trainer_checkpoint_from_ddp_loads_in_one_process(ranks):
    results, out = ranks
    assert os.path.exists(out / "ckpt-rank0.st") and os.path.exists(out / "log-rank0.csv")
    assert not os.path.exists(out / "ckpt-rank1.st"), "rank 1 wrote a checkpoint"
    assert not os.path.exists(out / "log-rank1.csv"), "rank 1 wrote a log"
    model = worker.make_model("mlp")
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.01),
                      nn.CrossEntropyLoss())
    assert trainer.load_checkpoint(str(out / "ckpt-rank0.st"))[0] == 2
    for name, value in model.state_dict().items():
        for rank in (0, 1):
            np.testing.assert_array_equal(value.numpy(), results[rank][f"trainer/{name}"].numpy())
    # the logged training loss is the mean over both ranks' shares, the same on each rank
    np.testing.assert_array_equal(results[0]["trainer_loss"].numpy(),
                                  results[1]["trainer_loss"].numpy())


@needs_mpi
@pytest.mark.parametrize("scenario", ["die", "hang"])
def test_a_failed_rank_stops_the_others(tmp_path, scenario):
    proc, elapsed = _mpiexec(tmp_path, scenario, timeout=90)
    assert proc.returncode != 0
    assert "finished a collective without rank 1" not in proc.stdout
    assert elapsed < 60, f"the job took {elapsed:.0f} s to stop"
    if scenario == "hang":  # rank 0 gave up after its 3 s timeout and said why
        assert "rank 0 of 2 waited 3 s in all_reduce" in proc.stderr, proc.stderr


@needs_mpi
@pytest.mark.parametrize("scenario, printed", [("error-everywhere", ["rank 0"]),
                                               ("error-on-rank-1", ["rank 1"])])
def test_an_error_is_printed_once_per_job(tmp_path, scenario, printed):
    proc, elapsed = _mpiexec(tmp_path, scenario, timeout=90)
    assert proc.returncode == 2, proc.stderr
    said = [r for r in ("rank 0", "rank 1") if f"{r}: bad input" in proc.stderr]
    assert said == printed, proc.stderr  # the other rank stayed quiet or was ended first
    assert "went on after the error" not in proc.stdout


def test_forwarding_drops_only_the_open_mpi_exit_notice():
    notice = (b"-" * 74 + b"\nprterun detected that one or more processes exited with non-zero"
              b" status,\nthus causing the job to be terminated. The first process to do so "
              b"was:\n\n   Process name: [prterun-vm-1@1,0]\n   Exit code:    2\n" + b"-" * 74
              + b"\n")
    text = (b"\repoch 1:  10%|#  | 1/10\rep" b"och 1:  20%|## | 2/10\n" + b"-" * 20 + b"\nkept\n"
            b"shendu train: no such file\n[vm:1] PMIX ERROR: PMIX_ERR_UNREACH in file x\n"
            + notice + b"after\n")
    chunks = [text[i:i + 7] for i in range(0, len(text), 7)]  # lines split across reads
    out = io.BytesIO()
    launch.forward_without_exit_notice(lambda: chunks.pop(0) if chunks else b"", out)
    assert out.getvalue() == (b"\repoch 1:  10%|#  | 1/10\repoch 1:  20%|## | 2/10\n"
                              + b"-" * 20 + b"\nkept\nshendu train: no such file\nafter\n")


@needs_mpi
def test_cli_error_on_every_rank_is_one_line(tmp_path):
    proc = _shendu(["train", "--subset", "--nproc", "2", "--resume", str(tmp_path / "no.st"),
                    "--epochs", "1", "--out", str(tmp_path / "run")], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"shendu train: --resume {tmp_path / 'no.st'}: no such file"], proc.stderr
    assert not (tmp_path / "run").exists()  # checked before anything was written


def test_collectives_need_a_process_group():
    assert dist.get_rank() == 0 and dist.get_world_size() == 1
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        dist.all_reduce(shendu.ones(2))
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        dist.DistributedDataParallel(nn.Linear(2, 2))


def test_post_accumulate_grad_hook_sees_the_accumulated_grad():
    w = shendu.ones(3, requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
    (w * 2).sum().backward()
    (w * 3).sum().backward()
    np.testing.assert_array_equal(seen, [[2, 2, 2], [5, 5, 5]])
    handle.remove()
    (w * 1).sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda p: None)


def _shendu(args, cwd, timeout=180):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(HERE),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "shendu.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


@needs_mpi
def test_cli_train_nproc_2_writes_once_and_the_checkpoint_evaluates(tmp_path):
    out = tmp_path / "run"
    proc = _shendu(["train", "--subset", "--limit-train", "640", "--limit-test", "300",
                    "--epochs", "1", "--batch-size", "32", "--nproc", "2", "--out", str(out)],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("test accuracy:") == 1, proc.stdout  # rank 0 alone talks
    assert sorted(os.listdir(out)) == ["best.st", "config.json", "curves.png", "history.csv",
                                       "last.st"]
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 2, rows  # one header, one epoch: written once, not once per rank
    proc = _shendu(["eval", "--checkpoint", str(out / "best.st"), "--limit-test", "300"],
                   tmp_path)
    assert proc.returncode == 0 and "test accuracy:" in proc.stdout, proc.stderr


@needs_mpi
def test_cli_lm_train_nproc_2(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question. " * 40)
    proc = _shendu(["lm", "train", "--model", "lstm", "--data", str(text), "--max-steps", "6",
                    "--eval-interval", "3", "--eval-batches", "1", "--hidden-size", "16",
                    "--embed-dim", "8", "--block-size", "16", "--batch-size", "4",
                    "--sample-chars", "0", "--nproc", "2", "--out", str(tmp_path / "lm")],
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("best validation loss") == 1
    assert os.path.exists(tmp_path / "lm" / "model.st")


@pytest.mark.parametrize("args, message", [
    (["--nproc", "0"], "--nproc must be a positive int"),
    (["--nproc", "3", "--batch-size", "64"], "does not split evenly over 3 ranks"),
])
def test_cli_nproc_errors_are_one_line_before_anything_starts(tmp_path, args, message):
    proc = _shendu(["train", "--subset", "--out", str(tmp_path / "run"), *args], tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_mpiexec_command_flags():
    if launch.find_mpiexec() is None or not launch.mpi4py_available():
        pytest.skip("needs the 'distributed' extra (mpi4py, Open MPI)")
    command = launch.mpiexec_command(2)
    assert command[1:3] == ["-n", "2"]
    assert ("--allow-run-as-root" in command) == (os.geteuid() == 0)
    many = launch.mpiexec_command((os.cpu_count() or 1) + 1)
    assert "--oversubscribe" in many
