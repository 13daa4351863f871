"""The Optimizer base class: parameter groups, per-parameter state, state_dict (torch.optim).

Concept: N3.2.3 (optimizers). Subclasses implement ``_update(p, grad, group, state)`` on raw
xp arrays; the base class owns the bookkeeping shared by every optimizer: grouping parameters,
evaluating the closure, skipping parameters without a gradient and serialising the state.

State layout (``optimizer.state[p]``) holds shendu Tensors (moment buffers) and Python numbers
(``'step'``), never anything that needs pickle, so a checkpoint can store the arrays in
safetensors / ``.npz`` and the numbers and ``param_groups`` in JSON.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections import defaultdict
from itertools import chain

from shendu import backend
from shendu.autograd import enable_grad, no_grad
from shendu.tensor import Tensor


class _Required:
    """Sentinel for a hyper-parameter every param group must give (torch's ``required``)."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of all optimizers (torch.optim.Optimizer semantics).

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts each holding
            ``'params'`` plus per-group overrides of the hyper-parameters (e.g. its own ``lr``).
        defaults: the hyper-parameters used by groups that do not override them.

    Attributes:
        param_groups: list of dicts with ``'params'`` (list of leaf Tensors) and every
            hyper-parameter of the optimizer; schedulers change ``group['lr']`` in place.
        defaults: the constructor's hyper-parameters.
        state: per-parameter dict (keyed by the parameter Tensor) of buffers and counters.

    Concept: N3.2.3.
    """

    #: {hyper-parameter: (what it is, rule)}, checked for every param group (check_hyper_group)
    hyper_rules: dict = {}

    def __init__(self, params, defaults: dict):
        check_hyper_group(type(self).__name__, self.hyper_rules,
                          {k: v for k, v in defaults.items() if v is not required})
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of Tensors or "
                            f"dicts, but got a Tensor of shape {params.shape}; wrap it in a list")
        _reject_set(params, type(self).__name__)
        groups = list(params)
        if len(groups) == 0:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items())
                      if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])

    # --- parameter groups -----------------------------------------------------------------
    def add_param_group(self, param_group: dict):
        """Append a group (dict with ``'params'`` and optional hyper-parameter overrides)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: param_group must be a dict, but got "
                            f"{type(param_group).__name__}")
        param_group = dict(param_group)
        params = param_group.get("params")
        if params is None:
            raise ValueError(f"{name}.add_param_group: the group has no 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        _reject_set(params, name)
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names and len(names) != len(params):
            raise ValueError(f"{name}: all optimizer params should be with/without names; "
                             "some param names are missing")
        if names:
            param_group["param_names"] = names
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (shape {p.shape}); "
                                 "optimize the leaf it was computed from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group contains the same parameter twice")
        param_group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in param_group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required "
                                 f"optimization parameter {key}")
            param_group.setdefault(key, default)
        check_hyper_group(name, self.hyper_rules, param_group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        for group in self.param_groups:
            if ("param_names" in group) != ("param_names" in param_group):
                raise ValueError(f"{name}: all optimizer param groups should be with/without "
                                 "names")
        self.param_groups.append(param_group)

    # --- gradients and steps --------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Reset every parameter's ``.grad``: to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    # a gradient made with create_graph=True carries a graph; cut it first
                    p.grad.detach_()
                    with no_grad():
                        p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient; return the closure's loss (or None).

        ``closure`` re-evaluates the model (zero_grad, forward, backward) and returns the loss;
        it runs with gradients enabled even though the update itself runs under no_grad.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    # _inplace validates and bumps the version counter that autograd checks,
                    # so a stale graph that saved p refuses to back-propagate through it
                    data = p._inplace(f"{type(self).__name__}.step")
                    state = self.state[p]
                    self._update(data, p.grad._data, group, state)
                    if not state:  # stateless updates (plain SGD) leave no entry, as torch
                        del self.state[p]
        return loss

    def _update(self, param, grad, group, state):
        """Update the xp array ``param`` in place from its gradient ``grad``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _update(), the "
                                  "per-parameter update rule of this optimizer")

    # --- serialisation --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``.

        Parameters are numbered 0, 1, ... across the groups in order (torch's format). The
        state values are the live buffers (not copies), as in torch.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Load a ``state_dict()``: buffers are copied and cast to each parameter's dtype and
        device; the hyper-parameters of the saved groups replace the current ones."""
        name = type(self).__name__
        if not (isinstance(state_dict, dict) and {"state", "param_groups"} <= state_dict.keys()):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups' (from optimizer.state_dict()), got {got}")
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has a different number "
                             f"of parameter groups ({len(saved_groups)}) than the optimizer "
                             f"({len(self.param_groups)})")
        for saved, group in zip(saved_groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: loaded state dict contains a parameter "
                                 f"group of {len(saved['params'])} params that doesn't match the "
                                 f"size of optimizer's group ({len(group['params'])})")
            missing = sorted(k for k in self.defaults if k not in saved)
            if missing:  # Adam's groups lack SGD's 'momentum', SGD's lack Adam's 'betas', ...
                raise ValueError(f"{name}.load_state_dict: the state dict is not from a {name} "
                                 f"(its parameter groups lack {missing}); load it into the "
                                 "optimizer type that saved it")
            check_hyper_group(f"{name}.load_state_dict", self.hyper_rules, saved)
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in self.param_groups)))
        state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key not in id_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter index {key} has no "
                                 "parameter in the param_groups")
            param = id_map[key]
            for k, v in value.items():
                shape = tuple(getattr(v, "shape", ()))
                if shape and shape != param.shape:
                    raise ValueError(f"{name}.load_state_dict: state {k!r} of parameter {key} "
                                     f"has shape {shape} but the parameter has shape "
                                     f"{param.shape}; the state dict is from another model")
            state[param] = {k: _cast_like(k, v, param) for k, v in value.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            new_groups.append(saved)
        self.state = state
        self.param_groups = new_groups


def _cast_like(key, value, param):
    """Copy a saved state value; Tensors and arrays take the parameter's dtype and device.

    ``'step'`` always comes back as a Python number, even when a checkpoint stored it as a
    0-d array (torch keeps a float32 tensor there; a number needs no device or dtype).
    """
    if isinstance(value, Tensor):
        value = value._data
    if key == "step" and backend.is_array(value):
        value = backend.to_numpy(value).item()
        return int(value) if float(value).is_integer() else value
    if backend.is_array(value):
        value = backend.to_device(value, param.device)
        if backend.is_floating(value.dtype):
            value = value.astype(param.dtype)
        return Tensor._wrap(value.copy())
    return copy.deepcopy(value)


def _reject_set(params, name):
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{name}: optimizer parameters need to be organized in ordered "
                        "collections, but the ordering of tensors in sets changes between runs; "
                        "use a list instead")


def lerp_(start, end, weight, scratch):
    """start += weight * (end - start) in place, with torch's two-sided formula for accuracy.

    ``scratch`` is a preallocated array shaped like ``start`` (overwritten).
    """
    backend.xp_of(start).subtract(end, start, out=scratch)
    if weight < 0.5:
        scratch *= weight
        start += scratch
    else:
        # torch: end - (end - start) * (1 - weight), exact at weight == 1
        scratch *= 1.0 - weight
        start[...] = end
        start -= scratch
    return start


def _finite_number(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


# (test, what a valid value is): the rules an optimizer's ``hyper_rules`` refer to
NON_NEGATIVE = (lambda v: _finite_number(v) and v >= 0, "a finite number >= 0")
FRACTION = (lambda v: _finite_number(v) and 0 <= v < 1, "a number in [0, 1)")
POSITIVE = (lambda v: _finite_number(v) and v > 0, "a finite number > 0")
NON_NEGATIVE_INT = (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)
                    and v >= 0, "an integer >= 0")
POSITIVE_INT = (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1,
                "an integer >= 1")
BETAS = "betas"  # a pair, each a FRACTION


def one_of(*choices):
    return (lambda v: v in choices, f"one of {choices}")


def check_hyper_group(name, rules, group):
    """Check every hyper-parameter of ``group`` that ``rules`` ({key: (what, rule)}) names.

    Raises torch's ``ValueError('Invalid <what>: <value>')`` plus what was expected, for the
    constructor's arguments and each group's overrides alike; a string or NaN learning rate
    would otherwise surface steps later as a NumPy error or a model full of NaN.
    """
    for key, (what, rule) in rules.items():
        if key not in group:
            continue
        value = group[key]
        if rule is BETAS:
            if not (isinstance(value, (tuple, list)) and len(value) == 2):
                raise ValueError(f"{name}: Invalid betas: {value!r} (expected a pair "
                                 "(beta1, beta2) of numbers in [0, 1))")
            for i, beta in enumerate(value):
                check_value(name, f"beta parameter at index {i}", beta, FRACTION)
        else:
            check_value(name, what, value, rule)


def check_value(name, what, value, rule):
    """Raise ``ValueError('<name>: Invalid <what>: <value> (expected ...)')`` unless ``value``
    passes ``rule`` (one of NON_NEGATIVE, POSITIVE, FRACTION, ... above)."""
    ok, expected = rule
    if not ok(value):
        raise ValueError(f"{name}: Invalid {what}: {value!r} (expected {expected})")
