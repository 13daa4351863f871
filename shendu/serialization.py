"""Checkpoints without pickle: ``shendu.save(obj, f)`` and ``shendu.load(f)``, as torch spells them.

Format. A file is a safetensors file (the optional ``checkpoints`` extra) or, when safetensors is
not installed or ``format="npz"`` is asked for, a NumPy ``.npz`` archive that is read back with
``allow_pickle=False``. ``load`` recognises the format from the file's first bytes, whatever the
file is called, and refuses ``torch.save`` / pickle files with the steps to convert them.
Loading never executes code from the file.

What can be saved (torch.save's common uses):
- Tensors (``requires_grad``, the device and ``nn.Parameter`` are kept) and NumPy arrays (they
  come back as NumPy arrays; CuPy arrays too); the same Tensor or array object saved twice
  comes back as one object (views of one storage come back as copies);
- dicts / lists / tuples nesting them, and JSON values (None, bools, ints, floats, strings;
  NumPy scalars are saved as Python numbers). Dict keys must be str or int; int keys (torch's
  optimizer state ``{'state': {0: {...}}}``) come back as ints, tuples as tuples. Nesting is
  limited to ``MAX_NESTING`` levels, on saving and on loading;
- whole ``nn.Module`` objects, ``shendu.Generator`` objects, dtypes, classes, functions and
  plain objects: see ``shendu.serialization_objects`` for what is re-created on loading
  (shendu's own classes, and classes allowed with ``safe_globals([...])``, never calling
  their ``__init__``).

Tensor names (the keys safetensors and ``.npz`` store):
- a tensor under a top-level str key ``k`` that does not start with ``@`` is named ``k``; so a
  flat state_dict ``{'fc.weight': W, ...}`` is stored under exactly its own keys and the file
  is a plain safetensors state_dict that ``safetensors.torch.load_file`` reads. A whole module
  saved bare stores its parameters and buffers under their state_dict keys too;
- every other tensor (nested, under an int key, under a key starting with ``@``, or the bare
  saved Tensor) is named ``@`` followed by its path, parts joined by ``/``: str parts with
  ``%``, ``/`` and ``#`` escaped as ``%25``, ``%2F``, ``%23``; int keys and list positions as
  ``#i``. Example: ``{'model': sd, 'optimizer': {'state': {0: {'exp_avg': m}}}, 'epoch': 3}``
  stores ``@model/fc.weight`` and ``@optimizer/state/#0/exp_avg``. The ``@`` prefix is reserved,
  so the two kinds of names never collide.

Everything that is not a tensor goes into the metadata as JSON: safetensors ``__metadata__``
(a str -> str map) holds ``shendu.format`` (``FORMAT_VERSION``) and ``shendu.tree``, the whole
object as JSON with each tensor replaced by ``{"$tensor": name}`` (plus ``"parameter"``,
``"requires_grad"`` and ``"device"`` when they are not False / False / "cpu"), each NumPy array
by ``{"$array": name}``, each dict by ``{"$dict": [[key, value], ...]}`` (which keeps int keys
and order) and each tuple by ``{"$tuple": [...]}``; the object nodes are described in
``shendu.serialization_objects``. In ``.npz`` the same two entries are stored as one uint8
array named ``__shendu_metadata__``. A file without ``shendu.tree`` (e.g. written by
``safetensors.torch.save_file``) loads as a flat dict name -> Tensor. Files of format "1"
(written before whole modules could be saved) load as they always did; their NumPy arrays come
back as Tensors, because format 1 did not tell them apart.

Writes to a path are atomic (``serialization_io.atomic_write``): a crash or kill never leaves a
half-written checkpoint in place of a good one, nor a temporary file that the next save of the
same target does not remove.
"""
from __future__ import annotations

import json
import os

from shendu import backend
from shendu import serialization_io
from shendu.serialization_io import atomic_write  # noqa: F401 - shendu.data.mnist writes with it
from shendu.serialization_objects import (ObjectCodec, add_safe_globals,  # noqa: F401
                                          clear_safe_globals, get_safe_globals, safe_globals,
                                          where)
from shendu.tensor import Tensor

FORMAT_VERSION = "2"
_READABLE_FORMATS = ("1", "2")
_np = backend.namespace("cpu")
MAX_NESTING = 100  # containers inside containers; json itself stops near 300 (3 per dict)


# --- flattening ----------------------------------------------------------------------------

def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F").replace("#", "%23")


def _part(key) -> str:
    return f"#{key}" if isinstance(key, int) else _escape(key)


def _tensor_name(path: tuple) -> str:
    if len(path) == 1 and isinstance(path[0], str) and not path[0].startswith("@"):
        return path[0]
    return "@" + "/".join(_part(k) for k in path)


def _as_array(obj, path):
    """The CPU NumPy array of a Tensor or xp array, C-contiguous (safetensors needs it)."""
    # t._data, not t.data: the array itself whatever Tensor.data returns
    array = backend.to_numpy(obj._data if isinstance(obj, Tensor) else obj)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"shendu.save: cannot save an array of dtype {array.dtype} at "
                        f"{where(path)}; only bool, integer, float and complex arrays are "
                        "saved (no pickle)")
    # not ascontiguousarray: it turns 0-d arrays (num_batches_tracked) into 1-d ones
    return array if array.flags.c_contiguous else array.copy(order="C")


class _Encoder:
    """Builds the JSON tree of an object and collects its arrays under their names."""

    def __init__(self):
        self.arrays: dict = {}
        self._names: dict = {}  # id(tensor or array) -> its name, so sharing is kept
        self._alive: list = []  # keeps every object whose id() is a key above alive
        self.objects = ObjectCodec(self)

    def _store(self, obj, path) -> str:
        name = self._names.get(id(obj))
        if name is None:
            name = _tensor_name(path)
            if name in self.arrays:  # two dotted paths spelled alike, e.g. attribute "a.b"
                name = f"@#dup{len(self.arrays)}"
            self.arrays[name] = _as_array(obj, path)
            self._names[id(obj)] = name
            self._alive.append(obj)
        return name

    def encode(self, obj, path: tuple = (), depth: int = 0):
        if depth > MAX_NESTING:
            raise ValueError(f"shendu.save: the object is nested more than {MAX_NESTING} "
                             f"levels deep at {where(path[:8])} ... (does a container hold "
                             "itself?)")
        if isinstance(obj, Tensor):
            return self._tensor(obj, path)
        if backend.is_array(obj):
            return {"$array": self._store(obj, path)}
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, _np.generic):
            return obj.item()  # a NumPy scalar such as np.float32(0.5)
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"shendu.save: dict keys must be str or int, got "
                                    f"{repr(key)[:60]} ({type(key).__name__}) at {where(path)}")
                items.append([key, self.encode(value, path + (key,), depth + 1)])
            return {"$dict": items}
        if isinstance(obj, (list, tuple)):
            encoded = [self.encode(v, path + (i,), depth + 1) for i, v in enumerate(obj)]
            return {"$tuple": encoded} if isinstance(obj, tuple) else encoded
        node = self.objects.encode(obj, path, depth)
        if node is None:
            raise TypeError(f"shendu.save: cannot save an object of type "
                            f"{type(obj).__name__} at {where(path)}; expected Tensors, "
                            "arrays, dicts, lists, tuples, numbers, strings, bools, None, "
                            "Modules or objects of classes with a plain __dict__ (no pickle)")
        return node

    def _tensor(self, t: Tensor, path):
        from shendu.nn.module import Parameter
        node = {"$tensor": self._store(t, path)}
        if isinstance(t, Parameter):
            node["parameter"] = True
        if t.requires_grad:
            node["requires_grad"] = True
        if t.device != "cpu":
            node["device"] = t.device
        return node


def _save_bytes(obj, format) -> bytes:  # noqa: A002 - torch-like keyword
    if format is None:
        format = "safetensors" if serialization_io._st_numpy is not None else "npz"  # noqa: A001
    if format not in ("safetensors", "npz"):
        raise ValueError(f"shendu.save: format must be 'safetensors' or 'npz', got {format!r}")
    if format == "safetensors" and serialization_io._st_numpy is None:
        raise RuntimeError("shendu.save: format='safetensors' needs the safetensors package "
                           "(pip install shendu[checkpoints]); or use format='npz'")
    encoder = _Encoder()
    tree = encoder.encode(obj)
    meta = {"shendu.format": FORMAT_VERSION, "shendu.tree": json.dumps(tree)}
    write = serialization_io.safetensors_bytes if format == "safetensors" \
        else serialization_io.npz_bytes
    return write(encoder.arrays, meta)


def save(obj, f, format=None) -> None:  # noqa: A002 - torch-like keyword
    """Save ``obj`` to ``f`` without pickle: torch.save's uses, in safetensors or ``.npz``.

    Args:
        obj: a Tensor/array, a Module, or dicts/lists/tuples of them and JSON values (see the
            module docstring for the full list and the file layout).
        f: a path (str or os.PathLike; its folder must exist), written atomically, or a binary
            file object with ``write`` (``io.BytesIO``, ``open(..., "wb")``), written at its
            position.
        format: "safetensors" or "npz"; default safetensors when installed, else npz.
    """
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        payload = _save_bytes(obj, format)
        atomic_write(path, payload)
    elif hasattr(f, "write"):
        f.write(_save_bytes(obj, format))
    else:
        raise TypeError(f"shendu.save: f must be a path or a binary file object with write(), "
                        f"got {type(f).__name__}")


# --- reading -------------------------------------------------------------------------------

def _location_name(device) -> str:
    """'cpu' or 'cuda' for a device spelling, without asking whether CUDA is available."""
    name = str(device)
    return "cuda" if name.startswith("cuda") else name


def _placement(map_location, source: str):
    """Where the tensors go: ``place(array, saved_location) -> Tensor`` (torch's rules)."""
    def to(array, device):
        try:
            target = backend.normalize_device(device)
        except RuntimeError as err:
            raise RuntimeError(f"shendu.load: {source} holds tensors saved on "
                               f"{_location_name(device)!r}: {err}; pass map_location='cpu' "
                               "to load them on the CPU") from None
        return Tensor._wrap(backend.to_device(array, target))

    if map_location is None:
        return to
    if isinstance(map_location, dict):
        mapping = {_location_name(k): v for k, v in map_location.items()}
        return lambda array, saved: to(array, mapping.get(saved, saved))
    if callable(map_location) and not isinstance(map_location, str):
        def call(array, saved):
            moved = map_location(Tensor._wrap(array), saved)
            if moved is None:
                return to(array, saved)
            if not isinstance(moved, Tensor):
                raise TypeError(f"shendu.load: map_location(tensor, {saved!r}) must return a "
                                f"Tensor or None, got {type(moved).__name__}")
            return moved
        return call
    backend.normalize_device(str(map_location))  # refuse a bad device before reading on
    return lambda array, saved: to(array, str(map_location))


class _Decoder:
    """Rebuilds the object of a JSON tree from its arrays (the inverse of ``_Encoder``)."""

    def __init__(self, arrays, source, place, weights_only):
        self.arrays, self.source, self.place = arrays, source, place
        self._tensors: dict = {}
        self.objects = ObjectCodec(self, weights_only=weights_only)

    def corrupted(self, what) -> ValueError:
        return ValueError(f"shendu.load: {self.source} is corrupted: {what}")

    def decode(self, node, depth: int = 0):
        if depth > MAX_NESTING:
            raise ValueError(f"shendu.load: {self.source} nests containers more than "
                             f"{MAX_NESTING} levels deep, which shendu neither writes nor reads")
        if isinstance(node, list):
            return [self.decode(v, depth + 1) for v in node]
        if not isinstance(node, dict):
            return node
        if "$tensor" in node:
            return self._tensor(node)
        if "$array" in node:
            return self._array(node["$array"])
        if "$tuple" in node:
            if not isinstance(node["$tuple"], list):
                raise self.corrupted(f"a $tuple node holds {node['$tuple']!r}, not a list")
            return tuple(self.decode(v, depth + 1) for v in node["$tuple"])
        if "$dict" in node:
            return {key: self.decode(value, depth + 1)
                    for key, value in self._pairs(node["$dict"])}
        return self.objects.decode(node, depth)

    def _pairs(self, items):
        if not isinstance(items, list):
            raise self.corrupted(f"a $dict node holds {str(items)[:80]!r}, not a list of "
                                 "[key, value] pairs")
        for item in items:
            if not (isinstance(item, list) and len(item) == 2):
                raise self.corrupted(f"a $dict node holds {str(item)[:80]!r}, not a "
                                     "[key, value] pair")
            if isinstance(item[0], bool) or not isinstance(item[0], (str, int)):
                raise self.corrupted(f"a $dict key is {item[0]!r}; keys are str or int")
        return items

    def _array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            raise self.corrupted(f"its metadata refers to tensor {name!r}, which the file "
                                 "does not contain")
        return self.arrays[name]

    def _tensor(self, node):
        name = node["$tensor"]
        array = self._array(name)  # checks the name first
        if name not in self._tensors:
            location = node.get("device", "cpu")
            if location not in ("cpu", "cuda"):
                raise self.corrupted(f"tensor {name!r} has device {location!r}")
            tensor = self.place(array, location)
            if node.get("parameter"):
                from shendu.nn.module import Parameter
                tensor = Parameter(tensor, requires_grad=bool(node.get("requires_grad")))
            elif node.get("requires_grad"):
                tensor.requires_grad_(True)
            self._tensors[name] = tensor
        return self._tensors[name]


def _read(f):
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        with open(path, "rb") as fh:
            return fh.read(), path
    if not hasattr(f, "read"):
        raise TypeError(f"shendu.load: f must be a path or a binary file object with read(), "
                        f"got {type(f).__name__}")
    raw = f.read()
    if isinstance(raw, str):
        raise TypeError("shendu.load: the file object was opened in text mode; open it with "
                        "'rb'")
    return bytes(raw), getattr(f, "name", None) or f"<{type(f).__name__}>"


def load(f, map_location=None, *, weights_only=None, device=None):
    """Load what ``save`` wrote (or any safetensors / pickle-free .npz file), never running code.

    Tensors come back with their saved dtypes, except bfloat16 (NumPy has no such dtype), which
    is widened to float32 exactly. A ``torch.save`` or other pickle file is refused with the
    steps to convert it.

    Args:
        f: a path or a binary file object with ``read`` (read from its position).
        map_location: where tensors go, as in torch.load: None (where they were saved; files
            of format 1 and files without shendu metadata: the CPU), a device ('cpu', 'cuda',
            a device object), a dict from saved to target location (``{'cuda:0': 'cpu'}``),
            or a callable ``(tensor_on_cpu, saved_location) -> Tensor or None`` (None: the
            default place). NumPy arrays always stay NumPy arrays.
        weights_only: True loads only tensors, arrays, containers, numbers, strings, dtypes
            and Generators, and refuses whole modules and other objects unless their classes
            were allowed with ``safe_globals`` (torch's rule). None or False also re-create
            shendu's own modules; other classes always need ``safe_globals``.
        device: the older spelling of a device ``map_location``.

    Raises:
        FileNotFoundError for a missing file; ValueError naming the file when it is truncated,
        corrupted or a pickle; pickle.UnpicklingError never.
    """
    if device is not None:
        if map_location is not None:
            raise TypeError("shendu.load: pass map_location or device, not both")
        map_location = device
    raw, source = _read(f)
    place = _placement(map_location, source)
    arrays, meta = serialization_io.read_checkpoint(raw, source)
    if "shendu.tree" not in meta:
        return {name: place(array, "cpu") for name, array in arrays.items()}
    version = meta.get("shendu.format")
    if version not in _READABLE_FORMATS:
        raise ValueError(f"shendu.load: {source} has shendu format {version!r}; this shendu "
                         f"reads formats {', '.join(_READABLE_FORMATS)} (is it from a newer "
                         "shendu?)")
    try:
        tree = json.loads(meta["shendu.tree"])
    except (json.JSONDecodeError, RecursionError, TypeError) as err:
        raise ValueError(f"shendu.load: {source} is corrupted: unreadable shendu.tree metadata "
                         f"({err})") from None
    return _Decoder(arrays, source, place, weights_only).decode(tree)
