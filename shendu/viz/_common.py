"""What every viz function shares: evaluation mode that is restored, target logits, the
gradient of a model's output with respect to its input (and never its parameters)."""
from __future__ import annotations

from contextlib import contextmanager

from shendu import autograd
from shendu.autograd import enable_grad
from shendu.tensor import Tensor


@contextmanager
def eval_mode(model):
    """Run the block with every sub-module in eval mode, then restore each one's own flag."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_images(x, caller):
    if not isinstance(x, Tensor):
        raise TypeError(f"{caller}: expected the input as a Tensor (N, C, H, W), got "
                        f"{type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{caller}: expected a batch (N, ...), got shape {x.shape}")


def target_index(target, n, caller, xp):
    """``target`` (an int or N class indices) as an xp int array of shape (N,)."""
    if isinstance(target, Tensor):
        target = target._data
    index = xp.asarray(target).astype(xp.int64).reshape(-1)
    if index.shape[0] == 1:
        index = xp.broadcast_to(index, (n,))
    if index.shape[0] != n:
        raise ValueError(f"{caller}: expected one target or {n} targets (one per input), got "
                         f"{index.shape[0]}")
    return index


def select_target(output, target, caller):
    """output (N, classes) -> output[i, target_i] of shape (N,)."""
    if output.ndim != 2:
        raise ValueError(f"{caller}: expected the model to return logits (N, classes), got "
                         f"shape {output.shape}")
    index = target_index(target, output.shape[0], caller, output._xp)
    if int(index.min()) < 0 or int(index.max()) >= output.shape[1]:
        raise ValueError(f"{caller}: target classes must lie in [0, {output.shape[1]}), got "
                         f"{sorted(set(index.tolist()))}")
    rows = output._xp.arange(output.shape[0])
    return output[Tensor._wrap(rows), Tensor._wrap(index)]


def input_gradient(fn, x):
    """d fn(x).sum() / dx for a leaf copy of x; the graph is freed and no ``.grad`` is set.

    ``fn`` maps the input batch to per-sample scalars (N,); summing them gives each sample's
    own gradient because samples do not interact in eval mode.
    """
    with enable_grad():
        leaf = x.detach().requires_grad_()
        values = fn(leaf)
        (grad,) = autograd.grad(values.sum(), [leaf])
    return grad, values.detach()
