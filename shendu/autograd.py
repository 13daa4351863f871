"""Reverse-mode automatic differentiation (Concept: N2.2, the chain rule).

A ``Function`` is one differentiable primitive: ``forward`` maps xp arrays to an xp array and
``backward`` maps the upstream gradient (a Tensor) to one gradient per input, written in Tensor
ops so that gradients are themselves differentiable (``create_graph=True``). The engine walks
the graph in reverse topological order, found iteratively so that deep graphs (an LSTM
unrolled over thousands of steps) never hit Python's recursion limit.
"""
from __future__ import annotations

import functools
import weakref

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode:
    """Context manager and decorator that sets graph recording to ``mode`` while active."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self.prev = None

    def __enter__(self):
        global _grad_enabled
        self.prev = _grad_enabled
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False

    def __call__(self, func):
        mode = self.mode

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with _GradMode(mode):
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Disable graph recording: ``with shendu.no_grad(): ...`` or ``@shendu.no_grad()``."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_GradMode):
    """Re-enable graph recording inside a ``no_grad`` block."""

    def __init__(self):
        super().__init__(True)


class inference_mode(_GradMode):
    """torch.inference_mode: no graph recording (shendu has no separate inference tensors,
    so this is ``no_grad``). A context manager, ``@inference_mode()`` or bare
    ``@inference_mode``; ``inference_mode(False)`` records again."""

    def __new__(cls, mode=True):
        if callable(mode):  # used as a bare decorator: @shendu.inference_mode
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        super().__init__(not mode)


class set_grad_enabled(_GradMode):
    """Turn graph recording on or off; as torch, it acts at once when called as a function.

    ``shendu.set_grad_enabled(False)`` disables recording until re-enabled; used with ``with``
    or as a decorator it restores the previous mode afterwards.
    """

    def __init__(self, mode: bool):
        global _grad_enabled
        super().__init__(mode)
        self.prev = _grad_enabled
        _grad_enabled = self.mode

    def __enter__(self):
        return self  # the mode was already set by __init__; __exit__ restores self.prev

    def __call__(self, func):
        global _grad_enabled
        _grad_enabled = self.prev  # decorating must not change the current mode
        return super().__call__(func)


class Function:
    """Base class of every differentiable primitive.

    Subclasses implement ``forward(self, *arrays, **params) -> array`` and
    ``backward(self, grad) -> tuple`` where ``grad`` is a Tensor shaped like the output and the
    tuple holds one Tensor (shaped exactly like that input) or None per input.
    Inside ``backward``, ``self.inputs`` are the input Tensors and ``self.output`` the output
    Tensor (when ``uses_output``), so gradients can be composed from Tensor ops.

    Class flags:
        uses_inputs: backward reads the inputs; an in-place change to one is an error.
        uses_output: backward reads the output (kept through a weak reference); an in-place
            change to it is an error too.
        once_differentiable: backward is not made of differentiable ops; a second derivative
            through it raises instead of silently returning zero.
    """

    uses_inputs = True
    uses_output = False
    once_differentiable = False

    inputs: tuple = ()
    needs_input_grad: tuple = ()

    @classmethod
    def apply(cls, *inputs, **params):
        # the hot path of every op: keep it to one pass over the inputs and no imports
        fn = object.__new__(cls)
        if _grad_enabled:
            needs = tuple([t is not None and t.requires_grad for t in inputs])
            requires = True in needs
        else:
            needs, requires = None, False
        fn.needs_input_grad = needs if requires else (False,) * len(inputs)
        out = _wrap(fn.forward(*[None if t is None else t._data for t in inputs], **params),
                    requires)
        if requires:
            fn.inputs = inputs
            fn.freed = False
            if cls.uses_inputs:
                fn.versions = tuple([0 if t is None else t._version for t in inputs])
            if cls.uses_output:
                fn._output_ref = weakref.ref(out)  # a fresh tensor: its version is 0
            out.grad_fn = fn
        return out

    @property
    def output(self):
        out = self._output_ref()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: the output needed by backward was freed")
        return out

    def name(self) -> str:
        return f"{type(self).__name__}Backward"

    def __repr__(self):
        return f"<{self.name()}>"

    def _release(self):
        # drop everything forward saved (arrays, masks, index arrays), not just saved_*:
        # a freed node only has to remember that it was freed
        self.__dict__.clear()
        self.inputs = None
        self._output_ref = None
        self.freed = True

    def _check_versions(self):
        cls = type(self)
        if cls.uses_inputs:
            for i, (t, v) in enumerate(zip(self.inputs, self.versions)):
                if t is not None and t._version != v:
                    raise RuntimeError(
                        f"{self.name()}: input {i} of shape {t.shape} needed for gradient "
                        f"computation was modified by an in-place operation (version {v} at "
                        f"forward, now {t._version}); use an out-of-place op instead")
        if cls.uses_output:
            out = self._output_ref()
            if out is not None and out._version != 0:
                raise RuntimeError(
                    f"{self.name()}: its output of shape {out.shape} needed for gradient "
                    "computation was modified by an in-place operation (version 0 at forward, "
                    f"now {out._version}); use an out-of-place op instead")


def _wrap(data, requires_grad):
    """Tensor._wrap, bound on first use (tensor.py imports this module)."""
    global _wrap
    from shendu.tensor import Tensor
    _wrap = Tensor._wrap
    return _wrap(data, requires_grad)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if grad._data.shape == shape:
        return grad
    shape = tuple(shape)
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(dim=axes, keepdim=True)
    return grad.reshape(shape)


def _topological_order(roots):
    """Tensors reachable from ``roots`` through requires_grad edges, inputs before users."""
    order, visited = [], set()
    stack = [(r, False) for r in roots]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        fn = tensor.grad_fn
        if fn is not None and fn.inputs:
            # pushed last-first, so the first input (the data path) is explored first and the
            # later ones (weights, biases) land right after their op in the reversed order:
            # backward then reaches each layer's parameters as soon as it leaves the layer,
            # which lets DistributedDataParallel start reducing them early
            for parent in reversed(fn.inputs):
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _run_backward(roots, root_grads, retain_graph, create_graph, capture=None,
                  accumulate=True):
    """Back-propagate ``root_grads`` from ``roots``.

    Leaves get their gradient accumulated into ``.grad`` when ``accumulate``; tensors whose id
    is a key of ``capture`` get their total gradient stored there instead.
    """
    grads = {}
    for root, g in zip(roots, root_grads):
        grads[id(root)] = g if id(root) not in grads else grads[id(root)] + g
    # a gradient the caller passed in must never become a leaf's .grad by reference. Keyed
    # by id and holding the Tensors: a freed Tensor's id is reused, and a stale id made
    # _accumulate_leaf copy half of an MLP's fresh gradients for nothing
    handed_out = {id(g): g for g in root_grads}
    with _GradMode(create_graph):
        for tensor in reversed(_topological_order(roots)):
            grad = grads.pop(id(tensor), None)
            if grad is None:
                continue
            if tensor._hooks:
                for hook in tensor._hooks:
                    new = hook(grad)
                    if new is not None:
                        grad = new
            if capture is not None and id(tensor) in capture:
                capture[id(tensor)] = grad
            fn = tensor.grad_fn
            if fn is None:
                if accumulate:
                    _accumulate_leaf(tensor, grad, handed_out)
                    if tensor._post_accumulate_hooks:
                        for hook in tensor._post_accumulate_hooks:
                            hook(tensor)
                continue
            if accumulate and tensor._retains_grad:
                _accumulate_leaf(tensor, grad, handed_out)
            if fn.freed:
                raise RuntimeError(
                    f"{fn.name()}: trying to backward through the graph a second time; its "
                    "saved tensors were freed by the first backward. Pass retain_graph=True "
                    "to the first backward() if you need to backward twice")
            if create_graph and fn.once_differentiable:
                raise RuntimeError(
                    f"{fn.name()} is once-differentiable: its backward is a fused kernel, so "
                    "create_graph=True (a second derivative) cannot pass through it")
            fn._check_versions()
            input_grads = fn.backward(grad)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(fn.inputs):
                raise RuntimeError(f"{fn.name()} returned {len(input_grads)} gradients for "
                                   f"{len(fn.inputs)} inputs")
            for parent, g in zip(fn.inputs, input_grads):
                if g is None or parent is None or not parent.requires_grad:
                    continue
                if g.shape != parent.shape:
                    raise RuntimeError(f"{fn.name()} returned a gradient of shape {g.shape} "
                                       f"for an input of shape {parent.shape}")
                key = id(parent)
                grads[key] = g if key not in grads else grads[key] + g
            if not retain_graph:
                fn._release()


def _accumulate_leaf(tensor, grad, handed_out):
    if grad.dtype != tensor.dtype:
        grad = grad.to(tensor.dtype)
    if tensor.grad is None:
        # one gradient Tensor may reach two leaves (x + y), a view may alias the caller's
        # gradient, and expand() gives read-only stride-0 views: give each leaf a writable
        # gradient of its own
        data = grad._data
        if (id(grad) in handed_out or data.base is not None
                or not getattr(data.flags, "writeable", True) or 0 in data.strides):
            grad = grad.clone()
        handed_out[id(grad)] = grad
        tensor.grad = grad if is_grad_enabled() else grad.detach()
    else:
        tensor.grad = tensor.grad + grad


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad`` (torch.autograd.backward)."""
    from shendu.tensor import Tensor

    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors)
    root_grads = [_initial_grad(t, g, "backward") for t, g in zip(tensors, grad_tensors)]
    if retain_graph is None:
        retain_graph = create_graph
    _run_backward(tensors, root_grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Return d(outputs)/d(inputs) without touching ``.grad`` (torch.autograd.grad)."""
    from shendu.tensor import Tensor

    single = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"autograd.grad: input {i} (shape {t.shape}) does not require "
                               "grad")
    root_grads = [_initial_grad(t, g, "autograd.grad") for t, g in zip(outputs, grad_outputs)]
    if retain_graph is None:
        retain_graph = create_graph
    capture = {id(t): None for t in inputs}
    _run_backward(outputs, root_grads, retain_graph, create_graph, capture=capture,
                  accumulate=False)
    results = []
    for i, t in enumerate(inputs):
        g = capture[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(f"autograd.grad: input {i} (shape {t.shape}) was not used to "
                               "compute the outputs; pass allow_unused=True to get None")
        results.append(g)
    return tuple(results)


def _initial_grad(tensor, grad, caller):
    from shendu.tensor import Tensor

    if not tensor.requires_grad:
        raise RuntimeError(f"{caller}: tensor of shape {tensor.shape} does not require grad "
                           "and has no grad_fn")
    if grad is None:
        if tensor.numel() != 1:
            raise RuntimeError(f"{caller}: grad can be implicitly created only for scalar "
                               f"outputs; got shape {tensor.shape}. Pass gradient= with that "
                               "shape")
        return Tensor._wrap(tensor._xp.ones(tensor.shape, dtype=tensor.dtype))
    if not isinstance(grad, Tensor):
        grad = Tensor._wrap(tensor._xp.asarray(grad, dtype=tensor.dtype))
    if grad.shape != tensor.shape:
        raise RuntimeError(f"{caller}: gradient has shape {grad.shape} but the output has shape "
                           f"{tensor.shape}")
    return grad
