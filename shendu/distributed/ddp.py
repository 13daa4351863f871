"""DistributedDataParallel: one model replica per rank, gradients averaged during backward.

At construction rank 0's parameters and buffers are copied to every rank. The parameters are
grouped into buckets of about ``bucket_cap_mb`` (in reverse registration order, roughly the
order backward produces their gradients; the first bucket is capped at 1 MiB, as in torch, so
that communication starts early). A post-accumulate-grad hook on every parameter counts the
gradients of its bucket; when the last one arrives the bucket's gradients are flattened into
one buffer and a non-blocking ``Iallreduce`` starts while backward goes on. When every bucket
is launched the reductions are waited for, divided by the world size and written back into
``.grad``, so ``optimizer.step()`` sees the gradient of the global batch.
"""
from __future__ import annotations

import contextlib
import time

from shendu import autograd, backend
from shendu.distributed import comm
from shendu.nn.module import Module

FIRST_BUCKET_BYTES = 1024 * 1024  # torch's dist._DEFAULT_FIRST_BUCKET_BYTES


class _Bucket:
    def __init__(self, params):
        self.params = params
        self.pending = len(params)
        self.work = self.flat = None

    def reset(self):
        self.pending = len(self.params)
        self.work = self.flat = None


def _assign_buckets(params, cap_bytes):
    """Consecutive groups of same-dtype parameters of at most ``cap_bytes`` each (a parameter
    larger than the cap gets a bucket of its own)."""
    buckets, current, size = [], [], 0
    limit = min(cap_bytes, FIRST_BUCKET_BYTES)
    for p in params:
        nbytes = p.numel() * p.dtype.itemsize
        if current and (size + nbytes > limit or p.dtype != current[0].dtype):
            buckets.append(_Bucket(current))
            current, size, limit = [], 0, cap_bytes
        current.append(p)
        size += nbytes
    if current:
        buckets.append(_Bucket(current))
    return buckets


class DistributedDataParallel(Module):
    """Wrap ``module`` so that backward averages its gradients over all ranks.

    Args:
        module: the model (the same architecture on every rank).
        bucket_cap_mb: bucket size in MiB. Default: 25 (torch's).
        broadcast_buffers: copy rank 0's buffers (batch-norm statistics) to every rank before
            each forward, as torch does. Default: True.

    Call ``shendu.distributed.init_process_group()`` first. Every rank must run forward and
    backward the same number of times, and every parameter that requires grad must receive a
    gradient in each backward (torch's default ``find_unused_parameters=False``).
    ``state_dict`` keys carry torch's 'module.' prefix; the Trainer saves ``self.module``'s
    own state so that its checkpoints load into the bare model in one process.

    Shape:
        forward passes its arguments to ``module`` unchanged.

    Example:
        >>> ddp = DistributedDataParallel(model)                     # doctest: +SKIP
        >>> loss_fn(ddp(x), y).backward()      # .grad now holds the global-batch gradient
    """

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a shendu.nn.Module, got "
                            f"{type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got "
                             f"{bucket_cap_mb!r}")
        comm._comm("DistributedDataParallel")  # fails clearly before init_process_group
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self.world_size = comm.get_world_size()
        params = [p for p in module.parameters() if p.requires_grad]
        comm.broadcast_coalesced(params + list(module.buffers()), src=0)
        self._buckets = _assign_buckets(list(reversed(params)), int(bucket_cap_mb * 2 ** 20))
        bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._launched = 0
        self._armed = False
        # perf_counter times of the last backward: its last bucket launched, all reduced
        self.comm_stats = {"ready_at": None, "done_at": None}
        for p in params:
            p.register_post_accumulate_grad_hook(self._make_hook(bucket_of[id(p)]))

    # --- forward ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        if self._launched or any(b.pending != len(b.params) for b in self._buckets):
            raise RuntimeError(self._unfinished_message())
        if self.broadcast_buffers and self.world_size > 1:
            buffers = list(self.module.buffers())
            if buffers:
                comm.broadcast_coalesced(buffers, src=0)
        self._armed = autograd.is_grad_enabled() and self.require_backward_grad_sync
        return self.module(*args, **kwargs)

    def _unfinished_message(self):
        missing = [name for name, p in self.module.named_parameters()
                   if p.requires_grad and any(b.pending and any(q is p for q in b.params)
                                              for b in self._buckets)]
        return ("DistributedDataParallel: the previous backward did not finish reducing "
                "gradients: no gradient reached the parameters "
                f"{missing[:5]}{' ...' if len(missing) > 5 else ''}. Every parameter that "
                "requires grad must take part in the loss on every rank (set requires_grad="
                "False on the unused ones)")

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside this block accumulate local gradients
        without communicating; the first backward after it reduces the accumulated sum."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --- backward: buckets ---------------------------------------------------------------------
    def _make_hook(self, bucket):
        def on_grad_accumulated(param):
            if not self._armed:
                return
            bucket.pending -= 1
            if bucket.pending == 0:
                self._launch(bucket)
            self._progress()
        return on_grad_accumulated

    def _launch(self, bucket):
        xp = backend.xp_of(bucket.params[0].grad._data)
        bucket.flat = xp.concatenate([p.grad._data.ravel() for p in bucket.params])
        bucket.work = comm.all_reduce(bucket.flat, async_op=True)
        self._launched += 1
        if self._launched == len(self._buckets):
            self._finish()

    def _progress(self):
        # MPI moves a non-blocking collective forward only inside MPI calls: testing the
        # pending requests from each hook is what lets them overlap the rest of backward
        for bucket in self._buckets:
            if bucket.work is not None:
                bucket.work.is_completed()

    def _finish(self):
        self.comm_stats["ready_at"] = time.perf_counter()
        for bucket in self._buckets:
            bucket.work.wait()
        self.comm_stats["done_at"] = time.perf_counter()
        scale = 1.0 / self.world_size
        for bucket in self._buckets:
            offset = 0
            for p in bucket.params:
                n = p.numel()
                p.grad._data[...] = bucket.flat[offset:offset + n].reshape(p.shape) * scale
                offset += n
            bucket.reset()
        self._launched = 0
        self._armed = False
