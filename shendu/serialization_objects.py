"""Whole modules and other objects in checkpoints, without pickle: the allow-list and its nodes.

``shendu.save(model, f)`` writes a JSON tree of the module: each module's class by import path
and its ``__dict__`` (parameters, buffers, child modules, ``training`` and plain attributes
such as ``in_features``), with the tensors stored as arrays beside it. ``shendu.load`` builds
the tree back, and this is the only place where it creates objects of a class that the file
names. It does so only for

- shendu's own ``nn.Module`` subclasses and dataclasses (configs), and functions of
  ``shendu.nn`` / ``shendu.ops`` used as attributes (``activation=F.gelu``); these are
  imported by name, but only from inside the ``shendu`` package;
- classes and functions the user allows with ``safe_globals([...])`` (a context manager) or
  ``add_safe_globals([...])``, torch's spellings. They are looked up in the allow-list by
  name and never imported. A class defined in a script (``__main__.Net``) also matches the
  allowed class of the same qualified name from another module, and ``(obj, "old.path")``
  allows a class under the name a file was written with.

Objects are created with ``object.__new__`` and their ``__dict__`` is filled from the file:
neither the class's ``__init__`` nor ``__setstate__`` runs, so loading calls no code of the
class (modules get ``nn.Module.__init__``'s empty hook tables first). That is what pickle does
for plain classes, and why a class whose ``__init__`` sets up more than its ``__dict__``
(open files, caches) must rebuild that itself. Modules with forward hooks registered are
refused on saving (hooks are functions that cannot be saved safely); lambdas too.

Nodes (see ``shendu.serialization`` for containers and tensors):
``{"$module": "module:qualname", "$id": n, "state": {...}}``, ``{"$object": ..., "$id": n,
"state": {...}}``, ``{"$global": "module:qualname"}``, ``{"$generator": {"seed", "state"},
"$id": n}``, ``{"$dtype": "float32"}`` and ``{"$ref": n}`` for an object met before (shared
or tied sub-modules come back shared).
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import re
import types

from shendu import backend

_np = backend.namespace("cpu")
_SAFE_GLOBALS: dict = {}  # "module.qualname" -> the allowed class or function
_SHENDU_MODULE = re.compile(r"shendu(\.[A-Za-z][A-Za-z0-9_]*)*\Z")
_SHENDU_FUNCTIONS = ("shendu.nn.", "shendu.ops.")
_SAVED_STORES = ("_parameters", "_buffers", "_modules")
_UNSAVED = None  # Module.__init__'s hook tables, filled on first use


def where(path: tuple) -> str:
    """A key path for error messages: ``key path 'model' -> 'fc.weight'``."""
    return "the top level" if not path else "key path " + " -> ".join(repr(k) for k in path)


# --- the allow-list (torch.serialization's names) ------------------------------------------

def _default_name(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def add_safe_globals(safe_globals) -> None:
    """Allow ``shendu.load`` to re-create these classes (and refer to these functions).

    Args:
        safe_globals: a list of classes / functions, or ``(obj, "module.qualname")`` pairs to
            allow ``obj`` under the name a file was written with.
    """
    for entry in safe_globals:
        if isinstance(entry, tuple):
            if len(entry) != 2 or not isinstance(entry[1], str):
                raise TypeError(f"add_safe_globals: expected (class_or_function, 'module.name')"
                                f", got {entry!r}")
            obj, name = entry
        else:
            obj, name = entry, None
        if not (isinstance(obj, type) or callable(obj)) or not hasattr(obj, "__qualname__"):
            raise TypeError(f"add_safe_globals: expected classes or functions, got {obj!r}")
        _SAFE_GLOBALS[name or _default_name(obj)] = obj


def get_safe_globals() -> list:
    """The allow-list, as ``add_safe_globals`` takes it."""
    return [obj if name == _default_name(obj) else (obj, name)
            for name, obj in _SAFE_GLOBALS.items()]


def clear_safe_globals() -> None:
    _SAFE_GLOBALS.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    """``with safe_globals([Net]): model = shendu.load(f)``: allow for the block only."""
    saved = dict(_SAFE_GLOBALS)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _SAFE_GLOBALS.clear()
        _SAFE_GLOBALS.update(saved)


def _allowed(module_name: str, qualname: str):
    obj = _SAFE_GLOBALS.get(f"{module_name}.{qualname}")
    if obj is not None:
        return obj
    # a script's class is __main__.Net when saved and mymodule.Net when imported to load
    matches = [o for name, o in _SAFE_GLOBALS.items()
               if getattr(o, "__qualname__", None) == qualname
               and "__main__" in (module_name, getattr(o, "__module__", None))]
    return matches[0] if len(matches) == 1 else None


def _import_from_shendu(module_name: str, qualname: str):
    """The object defined at ``module_name.qualname`` inside shendu, else None (no import
    outside the package, none of a dunder module such as shendu.__main__)."""
    if not _SHENDU_MODULE.match(module_name) or \
            not all(part.isidentifier() and not part.startswith("__")
                    for part in qualname.split(".")):
        return None
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if getattr(obj, "__module__", None) != module_name or \
            getattr(obj, "__qualname__", None) != qualname:
        return None  # re-exported or replaced: not the thing the name was written for
    return obj


# --- the nodes ------------------------------------------------------------------------------

def _module_class():
    from shendu.nn.module import Module
    return Module


def _unsaved_keys():
    """Module.__init__'s entries that are not state (hook tables), computed, so new ones
    added there later are covered."""
    global _UNSAVED
    if _UNSAVED is None:
        blank = vars(_module_class()())
        _UNSAVED = frozenset(k for k in blank
                             if k not in _SAVED_STORES + ("_non_persistent_buffers", "training"))
    return _UNSAVED


def _spec(obj, where) -> str:
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module_name or not qualname or "<lambda>" in qualname:
        raise TypeError(f"shendu.save: cannot save {obj!r} at {where}: a lambda or an object "
                        "without an import path; use a function or class defined with def / "
                        "class")
    return f"{module_name}:{qualname}"


def _is_plain_object(obj) -> bool:
    cls = type(obj)
    return (hasattr(obj, "__dict__") and cls.__new__ is object.__new__
            and not isinstance(obj, (enum.Enum, types.ModuleType, type))
            and not callable(obj))


class ObjectCodec:
    """Encodes and decodes the object nodes for a serialization ``_Encoder`` / ``_Decoder``."""

    def __init__(self, owner, weights_only=None):
        self.owner = owner
        self.weights_only = bool(weights_only)
        self._refs: dict = {}  # encoding: id(obj) -> ref number
        self._alive: list = []
        self._built: dict = {}  # decoding: ref number -> object

    # --- saving -------------------------------------------------------------------------
    def _remember(self, obj) -> int:
        self._refs[id(obj)] = len(self._refs)
        self._alive.append(obj)
        return self._refs[id(obj)]

    def encode(self, obj, path, depth):
        """The node of ``obj``, or None when it is of no kind shendu saves."""
        if id(obj) in self._refs:
            return {"$ref": self._refs[id(obj)]}
        location = where(path)
        if isinstance(obj, _module_class()):
            return self._module(obj, path, depth, "")
        if isinstance(obj, backend.Generator):
            ref = self._remember(obj)
            state = {"seed": obj.initial_seed, "state": obj.get_state()}
            return {"$generator": self.owner.encode(state, path, depth + 1), "$id": ref}
        if isinstance(obj, _np.dtype):
            return {"$dtype": obj.name}
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            return {"$global": _spec(obj, location)}
        if _is_plain_object(obj):
            spec = _spec(type(obj), location)
            ref = self._remember(obj)
            try:
                state = self.owner.encode(dict(vars(obj)), path, depth + 1)
            except TypeError as err:
                hint = "; save its state_dict() instead" if hasattr(obj, "state_dict") else ""
                raise TypeError(f"{err} (inside the {type(obj).__name__} object at "
                                f"{location}{hint})") from None
            return {"$object": spec, "$id": ref, "state": state}
        return None

    def _module(self, module, base, depth, prefix):
        """``base`` + dotted ``prefix`` name the tensors as state_dict keys would."""
        location = where(base + ((prefix[:-1],) if prefix else ()))
        ref = self._remember(module)
        items = []
        for key, value in vars(module).items():
            if key in _unsaved_keys():
                if value:
                    raise TypeError(f"shendu.save: cannot save the module at {location} "
                                    f"({type(module).__name__}) whole: it has hooks in {key}; "
                                    "remove them (handle.remove()) or save its state_dict()")
                continue
            if key == "_non_persistent_buffers":
                value = sorted(value)
            if key in _SAVED_STORES:
                node = {"$dict": [[name, self._member(v, base, prefix + name, depth)]
                                  for name, v in value.items()]}
            else:
                node = self.owner.encode(value, base + (prefix + key,), depth + 2)
            items.append([key, node])
        return {"$module": _spec(type(module), location), "$id": ref, "state": {"$dict": items}}

    def _member(self, value, base, dotted, depth):
        if isinstance(value, _module_class()) and id(value) not in self._refs:
            return self._module(value, base, depth + 3, dotted + ".")
        return self.owner.encode(value, base + (dotted,), depth + 3)

    # --- loading ------------------------------------------------------------------------
    def decode(self, node, depth):
        if "$ref" in node:
            if not isinstance(node["$ref"], int) or node["$ref"] not in self._built:
                raise self.owner.corrupted(f"it refers to object {node['$ref']!r} before "
                                           "defining it")
            return self._built[node["$ref"]]
        if "$dtype" in node:
            name = node["$dtype"]
            if not isinstance(name, str) or name not in _np.sctypeDict or \
                    _np.dtype(name).kind not in "biufc":
                raise self.owner.corrupted(f"unknown dtype {name!r}")
            return _np.dtype(name)
        if "$global" in node:
            return self._resolve(node["$global"], "global")
        if "$generator" in node:
            return self._generator(node, depth)
        if "$module" in node:
            return self._build(node, self._resolve(node["$module"], "module"), depth)
        if "$object" in node:
            return self._build(node, self._resolve(node["$object"], "object"), depth)
        raise self.owner.corrupted(f"unexpected metadata node {str(node)[:120]}")

    def _resolve(self, spec, kind):
        if not isinstance(spec, str) or spec.count(":") != 1:
            raise self.owner.corrupted(f"a ${kind} node names {spec!r}, not 'module:qualname'")
        module_name, qualname = spec.split(":")
        obj = _allowed(module_name, qualname)
        if obj is None and not self.weights_only:
            obj = _import_from_shendu(module_name, qualname)
            if obj is not None and not self._shendu_may_build(obj, kind):
                obj = None
        if obj is None:
            raise ValueError(self._refusal(module_name, qualname, kind))
        Module = _module_class()
        if kind == "module" and not (isinstance(obj, type) and issubclass(obj, Module)):
            raise ValueError(f"shendu.load: {self.owner.source} stores a module of class "
                             f"{module_name}.{qualname}, but the allowed {obj!r} is not an "
                             "nn.Module subclass")
        if kind == "object" and not isinstance(obj, type):
            raise ValueError(f"shendu.load: {self.owner.source} stores an object of class "
                             f"{module_name}.{qualname}, but the allowed {obj!r} is not a class")
        return obj

    @staticmethod
    def _shendu_may_build(obj, kind) -> bool:
        is_module = isinstance(obj, type) and issubclass(obj, _module_class())
        if kind == "module":
            return is_module
        if kind == "object":
            return isinstance(obj, type) and dataclasses.is_dataclass(obj)
        return is_module or (isinstance(obj, types.FunctionType)
                             and obj.__module__.startswith(_SHENDU_FUNCTIONS))

    def _refusal(self, module_name, qualname, kind) -> str:
        what = {"module": "a whole module of class", "object": "an object of class",
                "global": "a reference to"}[kind]
        short = qualname.split(".")[-1]
        head = f"shendu.load: {self.owner.source} holds {what} {module_name}.{qualname}"
        if "<locals>" in qualname:
            hint = (f"; it was defined inside a function, so allow that very object: "
                    f"shendu.serialization.safe_globals([{short}])")
            return head + hint
        if self.weights_only:
            return (head + ", and weights_only=True loads only tensors, arrays and containers "
                    "(torch's rule). Pass weights_only=False (shendu still runs no code from "
                    f"the file), or allow it: `with shendu.serialization.safe_globals([{short}"
                    "]): shendu.load(f, weights_only=True)`, or save and load model.state_dict()"
                    " instead")
        return (head + ", which shendu re-creates only when you allow it (shendu's own modules "
                "need no permission; weights_only=False does not lift this). If you trust the "
                f"file, allow the class: `with shendu.serialization.safe_globals([{short}]): "
                f"obj = shendu.load(f)`, or once for the program: "
                f"`shendu.serialization.add_safe_globals([{short}])`. It is created without "
                "running its __init__; its attributes come from the file")

    def _build(self, node, cls, depth):
        obj = object.__new__(cls)  # no __init__: no code of the class runs
        Module = _module_class()
        if isinstance(obj, Module):
            Module.__init__(obj)  # shendu's own: the empty stores and hook tables
        if not isinstance(node.get("$id"), int) or node["$id"] in self._built:
            raise self.owner.corrupted(f"a node of {cls.__qualname__} has a missing or "
                                       "repeated $id")
        self._built[node["$id"]] = obj  # before the state: a child may refer back to it
        state = self.owner.decode(node.get("state"), depth + 1)
        if not isinstance(state, dict) or not all(
                isinstance(k, str) and not k.startswith("__") for k in state):
            raise self.owner.corrupted(f"the state of a {cls.__qualname__} is "
                                       f"{str(state)[:80]!r}, not a dict of attribute names")
        if isinstance(obj, Module):
            self._fill_module(obj, state)
        else:
            obj.__dict__.update(state)
        return obj

    def _fill_module(self, module, state):
        from shendu.nn.module import Parameter
        from shendu.tensor import Tensor
        Module = _module_class()
        for store, kind in zip(_SAVED_STORES, (Parameter, Tensor, Module)):
            values = state.pop(store, {})
            if not isinstance(values, dict) or not all(
                    v is None or isinstance(v, kind) for v in values.values()):
                raise self.owner.corrupted(f"{type(module).__name__}.{store} holds "
                                           f"{str(values)[:80]}, not {kind.__name__}s")
            module.__dict__[store].update(values)
        non_persistent = state.pop("_non_persistent_buffers", [])
        if not isinstance(non_persistent, list) or not all(isinstance(n, str)
                                                           for n in non_persistent):
            raise self.owner.corrupted(f"{type(module).__name__} lists non-persistent "
                                       f"buffers {non_persistent!r}")
        module.__dict__["_non_persistent_buffers"].update(non_persistent)
        if not isinstance(state.get("training", True), bool) or \
                any(key in _unsaved_keys() for key in state):
            raise self.owner.corrupted(f"{type(module).__name__} has a bad training flag or "
                                       "hook table")
        module.__dict__.update(state)

    def _generator(self, node, depth):
        ref = node.get("$id")
        if not isinstance(ref, int) or ref in self._built:
            raise self.owner.corrupted("a $generator node has a missing or repeated $id")
        saved = self.owner.decode(node["$generator"], depth + 1)
        try:
            seed, state = saved["seed"], saved["state"]
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise TypeError(f"seed {seed!r}")
            generator = backend.Generator("cpu", seed)
            generator.set_state(state)
        except (TypeError, KeyError, ValueError) as err:
            raise self.owner.corrupted(f"unreadable Generator state ({err})") from None
        self._built[ref] = generator
        return generator
