"""Tensor: an xp array (NumPy or CuPy) plus the autograd bookkeeping.

Every math method is a one-line wrapper over a function in ``shendu.ops``, where the
derivative rules live. Creation functions (``tensor``, ``zeros``, ``randn``, ...) are in
``shendu.creation``.
"""
from __future__ import annotations

import operator

from shendu import autograd, backend
from shendu.tensor_methods import TensorMethods


_ndarray_cpu = backend.ndarray_cpu
_new = object.__new__

from shendu import devices as _devices  # noqa: E402 - Tensor.device's type


class Tensor(TensorMethods):
    """An n-dimensional array that records the ops applied to it for back-propagation.

    Attributes:
        data: a Tensor sharing this one's storage, outside the graph (as torch's).
        _data: the underlying xp array (numpy.ndarray or cupy.ndarray).
        grad: accumulated gradient (a Tensor shaped like this one) or None.
        requires_grad: whether ops on this tensor are recorded.
        grad_fn: the Function that produced this tensor (None for leaves).
    """

    __slots__ = ("_data", "_grad", "requires_grad", "grad_fn", "_version", "_retains_grad",
                 "_hooks", "_post_accumulate_hooks", "__weakref__")
    __array_priority__ = 1000  # make numpy defer to Tensor in `ndarray + Tensor`

    def __init__(self, *args, device=None):
        """``Tensor(data)`` or ``Tensor(*sizes)``: always float32, as torch.Tensor (see legacy)."""
        from shendu.legacy import legacy_array

        self._init(legacy_array(args, backend.default_float, device, "Tensor"), False)

    def _init(self, data, requires_grad):
        self._data = data
        self._grad = None
        self.requires_grad = requires_grad
        self.grad_fn = None
        self._version = 0
        self._retains_grad = False
        self._hooks = None
        self._post_accumulate_hooks = None

    @classmethod
    def _wrap(cls, data, requires_grad=False):
        """Wrap an xp array without copying or validation (the ops' fast path)."""
        if type(data) is not _ndarray_cpu and not backend.is_array(data):
            data = backend.xp_of(data).asarray(data)  # NumPy reductions return scalars
        out = _new(cls)
        # _init's assignments, inlined: this runs once per op
        out._data = data
        out._grad = None
        out.requires_grad = requires_grad
        out.grad_fn = None
        out._version = 0
        out._retains_grad = False
        out._hooks = None
        out._post_accumulate_hooks = None
        return out

    # --- properties -----------------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """This tensor's values as a new Tensor that shares its storage but not its graph
        (torch's ``.data``): ``p.data.add_(u)`` writes into ``p`` without autograd seeing it."""
        return Tensor._wrap(self._data)

    @data.setter
    def data(self, value):
        # torch lets the new value have another shape, dtype or device; unlike torch, the
        # version bump makes a backward that still needs the old values raise
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data: expected a Tensor to assign, got "
                            f"{type(value).__name__}; wrap arrays with shendu.as_tensor()")
        self._data = value._data
        self._version += 1

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        """torch's checks: a gradient is None or a Tensor of this tensor's shape, dtype and
        device, so a mis-shaped one cannot be broadcast into an optimizer's update later."""
        if value is not None:
            _check_grad(self, value)
        self._grad = value

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        """A ``shendu.device`` ("cpu" or "cuda"), which is also a plain string."""
        return _devices.of(backend.device_of(self._data))

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def _xp(self):
        return backend.xp_of(self._data)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    __hash__ = object.__hash__

    def __repr__(self):
        body = repr(backend.to_numpy(self._data)).replace("array(", "tensor(", 1)
        extra = []
        if self.device != "cpu":
            extra.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extra.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return body[:-1] + ", " + ", ".join(extra) + ")" if extra else body

    # --- conversion -----------------------------------------------------------------------
    def numpy(self):
        if self.requires_grad:
            raise RuntimeError("Tensor.numpy(): can't call numpy() on a tensor that requires "
                               "grad; use tensor.detach().numpy()")
        return backend.to_numpy(self._data)

    def __array__(self, dtype=None, copy=None):
        """``numpy.asarray(t)``, as torch allows it: only for tensors outside the graph."""
        array = self.numpy()
        if dtype is not None and array.dtype != dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"Tensor.item(): only one-element tensors can be converted to "
                             f"Python scalars; got shape {self.shape}")
        return self._data.reshape(()).item()

    def tolist(self):
        return backend.to_numpy(self._data).tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"bool(Tensor) of shape {self.shape} is ambiguous; use .any() or "
                               ".all()")
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def detach(self) -> Tensor:
        return Tensor._wrap(self._data)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self.requires_grad = False
        return self

    def clone(self) -> Tensor:
        from shendu.ops import elementwise
        return elementwise.clone(self)

    def to(self, *args, dtype=None, device=None) -> Tensor:
        """``to(device)``, ``to(dtype)``, ``to(other_tensor)`` or keywords, as torch."""
        for arg in args:
            if isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            elif isinstance(arg, str) and (arg == "cpu" or arg.startswith("cuda")):
                device = arg
            else:
                dtype = arg
        dtype = backend.as_dtype(dtype, "Tensor.to")
        from shendu.ops import elementwise
        return elementwise.to(self, dtype=dtype,
                              device=None if device is None else backend.normalize_device(device))

    def float(self) -> Tensor:
        return self.to(backend.float32)

    def double(self) -> Tensor:
        return self.to(backend.float64)

    def half(self) -> Tensor:
        return self.to(backend.float16)

    def long(self) -> Tensor:
        return self.to(backend.int64)

    def int(self) -> Tensor:
        return self.to(backend.int32)

    def bool(self) -> Tensor:
        return self.to(backend.bool_)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def type_as(self, other) -> Tensor:
        return self.to(other.dtype)

    def is_floating_point(self) -> bool:
        return backend.is_floating(self.dtype)

    def contiguous(self) -> Tensor:
        return self

    # --- autograd -------------------------------------------------------------------------
    def requires_grad_(self, requires_grad=True) -> Tensor:
        if requires_grad and not backend.is_floating(self.dtype):
            raise RuntimeError(f"requires_grad_(): only floating point tensors can require "
                               f"gradients; this one is {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach()")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; frees the graph after."""
        autograd.backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self):
        self._retains_grad = True

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new
        gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                               "require gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        hooks = self._hooks
        return _RemovableHandle(lambda: hooks.remove(hook) if hook in hooks else None)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` on a leaf tensor after backward has accumulated its gradient
        into ``.grad`` (torch's name); DistributedDataParallel starts reducing a bucket of
        gradients from these. Returns a handle whose ``remove()`` unregisters it."""
        if not self.requires_grad or not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors that "
                               f"require grad accumulate gradients; this one (shape {self.shape})"
                               f" is {'not a leaf' if not self.is_leaf else 'not requiring grad'}")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        hooks = self._post_accumulate_hooks
        hooks.append(hook)
        return _RemovableHandle(lambda: hooks.remove(hook) if hook in hooks else None)

    # --- in-place updates (no graph: optimizers, init, masking of non-grad tensors) -------
    def _check_inplace(self, op):
        if self.requires_grad and autograd.is_grad_enabled():
            kind = "a leaf tensor" if self.is_leaf else "a tensor"
            raise RuntimeError(f"{op}: {kind} that requires grad is being used in an in-place "
                               "operation; wrap it in shendu.no_grad() or use the out-of-place "
                               "op")

    def _inplace(self, op):
        """Validate an in-place op and bump the version counter that backward checks."""
        self._check_inplace(op)
        self._version += 1
        return self._data

    def _value(self, other):
        return other._data if isinstance(other, Tensor) else other

    def zero_(self):
        self._inplace("zero_")[...] = 0
        return self

    def fill_(self, value):
        self._inplace("fill_")[...] = self._value(value)
        return self

    def _update(self, op, apply, value):
        """Run ``apply(data, value)`` in place, naming ``op`` and the shapes on a mismatch."""
        data = self._inplace(op)
        try:
            apply(data, value)
        except ValueError:
            shape = tuple(getattr(value, "shape", ()))
            raise RuntimeError(f"{op}: operand of shape {shape} cannot be broadcast to the "
                               f"tensor's shape {self.shape}") from None
        return self

    def copy_(self, src):
        src = src._data if isinstance(src, Tensor) else self._xp.asarray(src)
        src = backend.to_device(src, self.device)
        try:
            fits = self._xp.broadcast_shapes(src.shape, self.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise RuntimeError(f"copy_: source of shape {src.shape} cannot be broadcast to "
                               f"the destination shape {self.shape}")
        self._inplace("copy_")[...] = src
        return self

    def add_(self, other, alpha=1):
        value = self._value(other)
        return self._update("add_", operator.iadd, value if alpha == 1 else alpha * value)

    def sub_(self, other, alpha=1):
        value = self._value(other)
        return self._update("sub_", operator.isub, value if alpha == 1 else alpha * value)

    def mul_(self, other):
        return self._update("mul_", operator.imul, self._value(other))

    def div_(self, other):
        return self._update("div_", operator.itruediv, self._value(other))

    def clamp_(self, min=None, max=None):
        data = self._inplace("clamp_")
        self._xp.clip(data, min, max, out=data)
        return self

    def masked_fill_(self, mask, value):
        self._inplace("masked_fill_")[self._value(mask)] = self._value(value)
        return self

    def __setitem__(self, index, value):
        data = self._inplace("__setitem__")
        value = self._value(value)
        try:
            data[_index_arrays(index)] = value
        except (IndexError, ValueError) as err:
            shape = tuple(getattr(value, "shape", ()))
            raise type(err)(f"__setitem__: cannot assign a value of shape {shape} at index "
                            f"{index!r} of a tensor of shape {self.shape}: {err}") from None

    # --- arithmetic (wrappers over shendu.ops) ---------------------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)
    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    def __and__(self, other): return ops.logical_and(self, other)
    def __or__(self, other): return ops.logical_or(self, other)
    def __invert__(self): return ops.logical_not(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    def add(self, other, alpha=1): return ops.add(self, other, alpha=alpha)
    def sub(self, other, alpha=1): return ops.sub(self, other, alpha=alpha)
    def mul(self, other): return ops.mul(self, other)
    def div(self, other): return ops.div(self, other)
    def neg(self): return ops.neg(self)
    def pow(self, exponent): return ops.pow(self, exponent)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def rsqrt(self): return ops.rsqrt(self)
    def square(self): return ops.square(self)
    def abs(self): return ops.abs(self)
    def sign(self): return ops.sign(self)
    def clamp(self, min=None, max=None): return ops.clamp(self, min, max)
    clip = clamp
    def maximum(self, other): return ops.maximum(self, other)
    def minimum(self, other): return ops.minimum(self, other)
    def eq(self, other): return ops.eq(self, other)
    def ne(self, other): return ops.ne(self, other)
    def lt(self, other): return ops.lt(self, other)
    def le(self, other): return ops.le(self, other)
    def gt(self, other): return ops.gt(self, other)
    def ge(self, other): return ops.ge(self, other)
    def logical_and(self, other): return ops.logical_and(self, other)
    def logical_or(self, other): return ops.logical_or(self, other)
    def logical_not(self): return ops.logical_not(self)
    def where(self, condition, other): return ops.where(condition, self, other)
    def matmul(self, other): return ops.matmul(self, other)
    def mm(self, other): return ops.mm(self, other)
    def bmm(self, other): return ops.bmm(self, other)
    def isnan(self): return ops.isnan(self)
    def isfinite(self): return ops.isfinite(self)
    def allclose(self, other, rtol=1e-5, atol=1e-8): return ops.allclose(self, other, rtol, atol)

    # --- reductions -----------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False): return ops.sum(self, dim, keepdim)
    def mean(self, dim=None, keepdim=False): return ops.mean(self, dim, keepdim)
    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=1):
        return ops.var(self, dim, unbiased, keepdim, correction=correction)
    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=1):
        return ops.std(self, dim, unbiased, keepdim, correction=correction)
    def max(self, dim=None, keepdim=False): return ops.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return ops.min(self, dim, keepdim)
    def amax(self, dim=None, keepdim=False): return ops.amax(self, dim, keepdim)
    def amin(self, dim=None, keepdim=False): return ops.amin(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return ops.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return ops.argmin(self, dim, keepdim)
    def logsumexp(self, dim, keepdim=False): return ops.logsumexp(self, dim, keepdim)
    def all(self, dim=None, keepdim=False): return ops.all(self, dim, keepdim)
    def any(self, dim=None, keepdim=False): return ops.any(self, dim, keepdim)

    # --- shape ----------------------------------------------------------------------------
    def reshape(self, *shape): return ops.reshape(self, *shape)
    def view(self, *shape): return ops.reshape(self, *shape)
    def view_as(self, other): return ops.reshape(self, other.shape)
    def reshape_as(self, other): return ops.reshape(self, other.shape)
    def permute(self, *dims): return ops.permute(self, *dims)
    def transpose(self, dim0, dim1): return ops.transpose(self, dim0, dim1)
    def t(self): return ops.t(self)
    def flatten(self, start_dim=0, end_dim=-1): return ops.flatten(self, start_dim, end_dim)
    def squeeze(self, dim=None): return ops.squeeze(self, dim)
    def unsqueeze(self, dim): return ops.unsqueeze(self, dim)
    def expand(self, *sizes): return ops.expand(self, *sizes)
    def expand_as(self, other): return ops.expand(self, *other.shape)
    def repeat(self, *sizes): return ops.repeat(self, *sizes)
    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)
    def chunk(self, chunks, dim=0): return ops.chunk(self, chunks, dim)
    def index_select(self, dim, index): return ops.index_select(self, dim, index)
    def gather(self, dim, index): return ops.gather(self, dim, index)
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)
    def flip(self, dims): return ops.flip(self, dims)
    def tril(self, diagonal=0): return ops.tril(self, diagonal)
    def triu(self, diagonal=0): return ops.triu(self, diagonal)

    # --- activations ----------------------------------------------------------------------
    def relu(self): return ops.relu(self)
    def sigmoid(self): return ops.sigmoid(self)
    def tanh(self): return ops.tanh(self)
    def erf(self): return ops.erf(self)
    def softmax(self, dim): return ops.softmax(self, dim)
    def log_softmax(self, dim): return ops.log_softmax(self, dim)


class _RemovableHandle:
    def __init__(self, remove):
        self._remove = remove

    def remove(self):
        self._remove()


def _check_grad(tensor, grad):
    if not isinstance(grad, Tensor):
        raise TypeError(f"Tensor.grad: assigned grad must be a Tensor or None, got "
                        f"{type(grad).__name__}")
    for what, got, expected in (("shape", grad.shape, tensor.shape),
                                ("dtype", grad.dtype, tensor.dtype),
                                ("device", grad.device, tensor.device)):
        if got != expected:
            raise RuntimeError(f"Tensor.grad: assigned grad has {what} {got} but the tensor "
                               f"has {what} {expected}")


def _index_arrays(index):
    """Replace Tensors inside an index expression by their arrays."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


from shendu import ops  # noqa: E402  (ops import Tensor; the methods look it up at call time)
