"""Run by tests/test_distributed.py under ``mpiexec -n 2``: trains small models with
DistributedDataParallel and writes what each rank ended with to OUT/<scenario>-rank<r>.st,
for the test (a single process) to compare with training on the whole batch.

    mpiexec -n 2 python tests/distributed_worker.py OUT train|die|hang
"""
import os
import sys
import time

import shendu
from shendu import distributed as dist
from shendu import nn, optim

STEPS, BATCH = 20, 8  # BATCH is the global batch; each of the 2 ranks takes half


def make_model(kind):
    """The three models of the equality test, float64, seeded (the same on every rank only
    after DDP broadcasts rank 0's parameters: the seed differs per rank on purpose)."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    if kind == "cnn":
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 3)).double()
        with shendu.no_grad():  # non-trivial running statistics, used in eval mode
            model[1].running_mean.copy_(shendu.randn(4, dtype=shendu.float64) * 0.1)
            model[1].running_var.copy_(shendu.rand(4, dtype=shendu.float64) + 0.5)
        return model.eval()  # eval-equivalent: batch norm normalises with running statistics
    return LSTMClassifier()


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.head = nn.Linear(6, 3)
        self.double()

    def forward(self, x):  # (N, L, 3) -> (N, 3) from the last step
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def make_data(kind):
    """(inputs, targets) for all STEPS global batches, the same on every rank."""
    gen = shendu.Generator(seed=123)
    shape = {"mlp": (5,), "cnn": (2, 6, 6), "lstm": (7, 3)}[kind]
    x = shendu.randn(STEPS * BATCH, *shape, dtype=shendu.float64, generator=gen)
    y = shendu.randint(0, 3, (STEPS * BATCH,), generator=gen)
    return x, y


def train_ddp(kind, rank, world):
    shendu.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
    model = dist.DistributedDataParallel(make_model(kind), bucket_cap_mb=0.001)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x, y = make_data(kind)
    share = BATCH // world
    for step in range(STEPS):
        lo = step * BATCH + rank * share
        optimizer.zero_grad()
        loss_fn(model(x[lo:lo + share]), y[lo:lo + share]).backward()
        optimizer.step()
    return model.module


def no_sync_grads(rank, world):
    """Gradients after one backward inside no_sync and one outside (accumulation)."""
    shendu.manual_seed(7)
    model = dist.DistributedDataParallel(make_model("mlp"))
    x, y = make_data("mlp")
    share = BATCH // world
    loss_fn = nn.CrossEntropyLoss()
    with model.no_sync():
        loss_fn(model(x[rank * share:(rank + 1) * share]), y[rank * share:(rank + 1) * share]
                ).backward()
    local = {n: p.grad.clone() for n, p in model.module.named_parameters()}
    lo = BATCH + rank * share
    loss_fn(model(x[lo:lo + share]), y[lo:lo + share]).backward()
    return local, {n: p.grad.clone() for n, p in model.module.named_parameters()}


def collectives(rank, world):
    out = {}
    t = shendu.tensor([1.0, 2.0, 3.0]) * (rank + 1)
    dist.all_reduce(t)
    out["all_reduce_sum"] = t
    t = shendu.tensor([1.0, 2.0]) * (rank + 1)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    out["all_reduce_max"] = t
    t = shendu.full((2, 2), float(rank))
    work = dist.all_reduce(t, op=dist.ReduceOp.AVG, async_op=True)
    work.wait()
    out["all_reduce_avg"] = t
    t = shendu.arange(4, dtype=shendu.float32) + 10 * rank
    dist.broadcast(t, src=1)
    out["broadcast"] = t
    parts = [shendu.zeros(3, dtype=shendu.int64) for _ in range(world)]
    dist.all_gather(parts, shendu.arange(3) + 100 * rank)
    out["all_gather"] = shendu.stack(parts)
    column = shendu.ones(3, 2)[:, 0]  # not contiguous: written back after the reduction
    dist.all_reduce(column)
    out["strided"] = column
    dist.barrier()
    return out


def sampler_indices(rank, world):
    """Each rank's indices of two epochs, for lengths that do and do not divide evenly."""
    out = {}
    for n in (10, 11):
        for drop_last in (False, True):
            sampler = dist.DistributedSampler(range(n), seed=5, drop_last=drop_last)
            for epoch in (0, 1):
                sampler.set_epoch(epoch)
                out[f"n{n}-drop{int(drop_last)}-epoch{epoch}"] = shendu.tensor(
                    sampler.indices())
    return out


def train_with_trainer(out_dir, rank, world):
    """The Trainer under DDP with a DistributedSampler; rank 0 alone writes the checkpoint."""
    from shendu.data import DataLoader, TensorDataset
    from shendu.train import CSVLogger, ModelCheckpoint, Trainer
    shendu.manual_seed(rank)
    x, y = make_data("mlp")
    data = TensorDataset(x[:36], y[:36])
    sampler = dist.DistributedSampler(data, seed=3)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    model = dist.DistributedDataParallel(make_model("mlp"))
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=0.01), nn.CrossEntropyLoss(),
                      callbacks=[ModelCheckpoint(os.path.join(out_dir, f"ckpt-rank{rank}.st")),
                                 CSVLogger(os.path.join(out_dir, f"log-rank{rank}.csv"))])
    history = trainer.fit(loader, epochs=2)
    return model.module, history


def run_train(out_dir):
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for kind in ("mlp", "cnn", "lstm"):
        for name, value in train_ddp(kind, rank, world).state_dict().items():
            results[f"{kind}/{name}"] = value
    local, synced = no_sync_grads(rank, world)
    results.update({f"no_sync_local/{k}": v for k, v in local.items()})
    results.update({f"no_sync_synced/{k}": v for k, v in synced.items()})
    results.update({f"comm/{k}": v for k, v in collectives(rank, world).items()})
    results.update({f"sampler/{k}": v for k, v in sampler_indices(rank, world).items()})
    module, history = train_with_trainer(out_dir, rank, world)
    results.update({f"trainer/{k}": v for k, v in module.state_dict().items()})
    results["trainer_loss"] = shendu.tensor(history.history["loss"])
    shendu.save(results, os.path.join(out_dir, f"train-rank{rank}.st"))


def run_failure(kind):
    dist.init_process_group(timeout=3)
    if dist.get_rank() == 1:
        if kind == "die":
            os._exit(3)  # no exception, no MPI_Finalize: a crashed process
        time.sleep(60)  # a hung rank: rank 0 must give up after the timeout
    dist.all_reduce(shendu.ones(3))
    print("rank 0 finished a collective without rank 1", flush=True)


def run_error(kind):
    """A CLI-style error on every rank, or on rank 1 alone while rank 0 waits for it."""
    from shendu.distributed import launch
    dist.init_process_group(timeout=30)
    if kind == "error-everywhere" or dist.get_rank() == 1:
        launch.report_error(f"rank {dist.get_rank()}: bad input", 2)
    dist.all_reduce(shendu.ones(3))
    print(f"rank {dist.get_rank()} went on after the error", flush=True)


if __name__ == "__main__":
    out, scenario = sys.argv[1], sys.argv[2]
    if scenario == "train":
        run_train(out)
    elif scenario.startswith("error"):
        run_error(scenario)
    else:
        run_failure(scenario)
