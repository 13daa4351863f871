"""The rest of torch's Tensor methods, mixed into ``shendu.Tensor``: the ``new_*``
constructors, ``type``, ``narrow``, in-place math and random fills, and thin wrappers over
the ops in ``shendu.ops`` (sorting, scans, norms, rounding, trigonometry).

Kept apart from ``tensor.py`` so that file stays about the autograd bookkeeping; like it, no
derivative code lives here.
"""
from __future__ import annotations

from shendu import backend

# torch's legacy type strings, which scripts compare against (``x.type() == ...``)
_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor",
               "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}


def _dtype_of_type_name(name):
    short = name.rsplit(".", 1)[-1]
    for dtype, type_name in _TYPE_NAMES.items():
        if type_name == short:
            return backend.as_dtype(dtype)
    raise ValueError(f"Tensor.type: unknown type {name!r}; expected a dtype or one of "
                     f"{sorted('torch.' + n for n in _TYPE_NAMES.values())}")


class TensorMethods:
    """Methods of ``Tensor`` beyond the core ones (see the module docstring)."""

    __slots__ = ()

    # --- constructors that inherit dtype and device ---------------------------------------
    def _new(self, maker, size, dtype, device, requires_grad, *args):
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        return maker(*size, *args, dtype=self.dtype if dtype is None else dtype,
                     device=self.device if device is None else device,
                     requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from shendu.creation import zeros
        return self._new(zeros, size, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from shendu.creation import ones
        return self._new(ones, size, dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        from shendu.creation import empty
        return self._new(empty, size, dtype, device, requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        from shendu.creation import full
        return full(tuple(size), fill_value, dtype=self.dtype if dtype is None else dtype,
                    device=self.device if device is None else device,
                    requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
        """A copy of ``data`` with this tensor's dtype and device unless given (torch's)."""
        from shendu.creation import tensor
        return tensor(data, dtype=self.dtype if dtype is None else dtype,
                      device=self.device if device is None else device,
                      requires_grad=requires_grad)

    # --- type and device queries ----------------------------------------------------------
    def type(self, dtype=None):
        """``type()``: torch's type string ('torch.FloatTensor'); ``type(dtype)``: a cast
        (a dtype, or one of those strings)."""
        if dtype is None:
            name = _TYPE_NAMES.get(str(self.dtype))
            if name is None:
                raise TypeError(f"Tensor.type(): no torch type name for dtype {self.dtype}")
            return f"torch.{'cuda.' if self.is_cuda else ''}{name}"
        if isinstance(dtype, str):
            dtype = _dtype_of_type_name(dtype)
        return self.to(dtype)

    @property
    def is_cuda(self) -> bool:
        return self.device != "cpu"

    def element_size(self) -> int:
        return int(self.dtype.itemsize)

    def narrow(self, dim, start, length):
        """The slice ``start:start+length`` of ``dim`` (a view in torch, a graph op here)."""
        from shendu.ops.shape import _dim
        d = _dim(dim, self.ndim, "narrow")
        size = self.shape[d]
        start = int(start)
        if start < 0:
            start += size
        if not (0 <= start <= size and 0 <= length and start + length <= size):
            raise IndexError(f"narrow: start {start} + length {length} exceeds dimension {d} "
                             f"of size {size} (shape {self.shape})")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    # --- in-place math (no graph, as the core in-place ops) --------------------------------
    def _unary_(self, op, fn):
        data = self._inplace(op)
        fn(data, out=data)
        return self

    def sqrt_(self): return self._unary_("sqrt_", self._xp.sqrt)
    def exp_(self): return self._unary_("exp_", self._xp.exp)
    def log_(self): return self._unary_("log_", self._xp.log)
    def abs_(self): return self._unary_("abs_", self._xp.abs)
    def neg_(self): return self._unary_("neg_", self._xp.negative)
    def sign_(self): return self._unary_("sign_", self._xp.sign)
    def floor_(self): return self._unary_("floor_", self._xp.floor)
    def ceil_(self): return self._unary_("ceil_", self._xp.ceil)
    def round_(self): return self._unary_("round_", self._xp.round)

    def pow_(self, exponent):
        from operator import ipow
        return self._update("pow_", ipow, self._value(exponent))

    def addcmul_(self, tensor1, tensor2, value=1):
        """self += value * tensor1 * tensor2 (broadcast to self's shape)."""
        return self.add_(self._value(tensor1) * self._value(tensor2), alpha=value)

    def addcdiv_(self, tensor1, tensor2, value=1):
        """self += value * tensor1 / tensor2 (broadcast to self's shape)."""
        return self.add_(self._value(tensor1) / self._value(tensor2), alpha=value)

    def lerp_(self, end, weight):
        """self += weight * (end - self)."""
        return self.add_(self._value(weight) * (self._value(end) - self._data))

    def clamp_min_(self, min):  # noqa: A002 - torch's name
        return self.clamp_(min=min)

    def clamp_max_(self, max):  # noqa: A002 - torch's name
        return self.clamp_(max=max)

    # --- in-place random fills --------------------------------------------------------------
    def _fill_random(self, op, draw, generator):
        if not backend.is_floating(self.dtype):
            raise TypeError(f"{op}: expected a floating point tensor, got {self.dtype}")
        if generator is None:
            generator = backend.default_generator(self.device)
        elif generator.device != self.device:
            raise ValueError(f"{op}: generator is on {generator.device} but the tensor is on "
                             f"{self.device}")
        values = draw(generator)
        self._inplace(op)[...] = values
        return self

    def uniform_(self, a=0.0, b=1.0, *, generator=None):
        """Fill with U(a, b) draws from ``generator`` (the device default when None)."""
        if a > b:
            raise ValueError(f"uniform_: expects a <= b, got a={a}, b={b}")
        return self._fill_random("uniform_",
                                 lambda g: g.random(self.shape, self.dtype) * (b - a) + a,
                                 generator)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with N(mean, std^2) draws."""
        if std < 0:
            raise ValueError(f"normal_: expects std >= 0, got {std}")
        return self._fill_random("normal_",
                                 lambda g: g.normal(self.shape, self.dtype) * std + mean,
                                 generator)

    def bernoulli_(self, p=0.5, *, generator=None):
        """Fill with 1.0 (probability p) or 0.0."""
        if not 0 <= p <= 1:
            raise ValueError(f"bernoulli_: expects 0 <= p <= 1, got {p}")
        return self._fill_random("bernoulli_",
                                 lambda g: g.random(self.shape, self.dtype) < p, generator)

    # --- wrappers over shendu.ops (the derivative rules live there) -----------------------
    def sin(self): return _ops().sin(self)
    def cos(self): return _ops().cos(self)
    def floor(self): return _ops().floor(self)
    def ceil(self): return _ops().ceil(self)
    def round(self, *, decimals=0): return _ops().round(self, decimals=decimals)
    def cumsum(self, dim, *, dtype=None): return _ops().cumsum(self, dim, dtype=dtype)
    def prod(self, dim=None, keepdim=False, *, dtype=None):
        return _ops().prod(self, dim, keepdim, dtype=dtype)
    def norm(self, p="fro", dim=None, keepdim=False, dtype=None):
        return _ops().norm(self, p, dim, keepdim, dtype)
    def outer(self, other): return _ops().outer(self, other)
    def sort(self, dim=-1, descending=False, stable=False):
        return _ops().sort(self, dim, descending, stable)
    def argsort(self, dim=-1, descending=False, stable=False):
        return _ops().argsort(self, dim, descending, stable)
    def topk(self, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - torch's name
        return _ops().topk(self, k, dim, largest, sorted)
    def unique(self, sorted=True, return_inverse=False, return_counts=False,  # noqa: A002
               dim=None):
        return _ops().unique(self, sorted, return_inverse, return_counts, dim)
    def multinomial(self, num_samples, replacement=False, *, generator=None):
        return _ops().multinomial(self, num_samples, replacement, generator=generator)


def _ops():
    from shendu import ops
    return ops
