"""Checkpoints without pickle: ``shendu.save(obj, path)`` and ``shendu.load(path)``.

Format. A file is a safetensors file (the optional ``checkpoints`` extra) or, when safetensors is
not installed or ``format="npz"`` is asked for, a NumPy ``.npz`` archive that is read back with
``allow_pickle=False``. ``load`` recognises the format from the file's first bytes, whatever the
file is called. Loading never executes code.

What can be saved. A Tensor (or NumPy array), or dicts / lists / tuples nesting Tensors, arrays
and JSON values (None, bools, ints, floats, strings). Dict keys must be str or int; int keys
(torch's optimizer state ``{'state': {0: {...}}}``) come back as ints, tuples as tuples.

Tensor names (the keys safetensors and ``.npz`` store):
- a tensor under a top-level str key ``k`` that does not start with ``@`` is named ``k``; so a
  flat state_dict ``{'fc.weight': W, ...}`` is stored under exactly its own keys and the file
  is a plain safetensors state_dict that ``safetensors.torch.load_file`` reads;
- every other tensor (nested, under an int key, under a key starting with ``@``, or the bare
  saved Tensor) is named ``@`` followed by its path, parts joined by ``/``: str parts with
  ``%``, ``/`` and ``#`` escaped as ``%25``, ``%2F``, ``%23``; int keys and list positions as
  ``#i``. Example: ``{'model': sd, 'optimizer': {'state': {0: {'exp_avg': m}}}, 'epoch': 3}``
  stores ``@model/fc.weight`` and ``@optimizer/state/#0/exp_avg``. The ``@`` prefix is reserved,
  so the two kinds of names never collide.

Everything that is not a tensor goes into the metadata as JSON: safetensors ``__metadata__``
(a str -> str map) holds ``shendu.format`` ("1") and ``shendu.tree``, the whole object as JSON
with each tensor replaced by ``{"$tensor": name}``, each dict by ``{"$dict": [[key, value],
...]}`` (which keeps int keys and order) and each tuple by ``{"$tuple": [...]}``. In ``.npz``
the same two entries are stored as one uint8 array named ``__shendu_metadata__``.
A file without ``shendu.tree`` (e.g. written by ``safetensors.torch.save_file``) loads as a flat
dict name -> Tensor.

Writes are atomic: the bytes go to a temporary file in the target directory, which is flushed,
fsync'ed and then ``os.replace``'d over the target, so a crash never leaves a half-written
checkpoint in place of a good one.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

from shendu import backend
from shendu.tensor import Tensor

try:  # optional extra: pip install shendu[checkpoints]
    import safetensors
    import safetensors.numpy as _st_numpy
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    safetensors = None
    _st_numpy = None

FORMAT_VERSION = "1"
_NPZ_META = "__shendu_metadata__"
_NPZ_MAGIC = b"PK\x03\x04"
_np = backend.namespace("cpu")


# --- flattening ----------------------------------------------------------------------------

def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F").replace("#", "%23")


def _part(key) -> str:
    return f"#{key}" if isinstance(key, int) else _escape(key)


def _tensor_name(path: tuple) -> str:
    if len(path) == 1 and isinstance(path[0], str) and not path[0].startswith("@"):
        return path[0]
    return "@" + "/".join(_part(k) for k in path)


def _as_array(obj):
    """The CPU array of a Tensor or xp array, made contiguous (safetensors needs it)."""
    array = backend.to_numpy(obj.detach()._data if isinstance(obj, Tensor) else obj)
    # not ascontiguousarray: it turns 0-d arrays (num_batches_tracked) into 1-d ones
    return array if array.flags.c_contiguous else array.copy(order="C")


def _encode(obj, path: tuple, tensors: dict):
    """JSON tree for ``obj``; its tensors are added to ``tensors`` under their names."""
    if isinstance(obj, Tensor) or backend.is_array(obj):
        name = _tensor_name(path)
        tensors[name] = _as_array(obj)
        return {"$tensor": name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():
        return obj.item()  # a NumPy scalar such as np.float32(0.5)
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"shendu.save: dict keys must be str or int, got {key!r} "
                                f"({type(key).__name__}) at {_where(path)}")
            items.append([key, _encode(value, path + (key,), tensors)])
        return {"$dict": items}
    if isinstance(obj, (list, tuple)):
        encoded = [_encode(v, path + (i,), tensors) for i, v in enumerate(obj)]
        return {"$tuple": encoded} if isinstance(obj, tuple) else encoded
    raise TypeError(f"shendu.save: cannot save an object of type {type(obj).__name__} at "
                    f"{_where(path)}; expected Tensors, arrays, dicts, lists, tuples, numbers, "
                    "strings, bools or None (no pickle)")


def _where(path: tuple) -> str:
    return "the top level" if not path else "key path " + " -> ".join(repr(k) for k in path)


def _decode(node, tensors: dict, path: str):
    if isinstance(node, list):
        return [_decode(v, tensors, path) for v in node]
    if not isinstance(node, dict):
        return node
    if "$tensor" in node:
        name = node["$tensor"]
        if name not in tensors:
            raise ValueError(f"shendu.load: {path} is corrupted: its metadata refers to tensor "
                             f"{name!r}, which the file does not contain")
        return tensors[name]
    if "$tuple" in node:
        return tuple(_decode(v, tensors, path) for v in node["$tuple"])
    if "$dict" in node:
        return {key: _decode(value, tensors, path) for key, value in node["$dict"]}
    raise ValueError(f"shendu.load: {path} is corrupted: unexpected metadata node {node!r}")


# --- writing -------------------------------------------------------------------------------

def atomic_write(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a fsync'ed temporary file and os.replace."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _safetensors_bytes(tensors: dict, meta: dict) -> bytes:
    return _st_numpy.save(tensors, metadata=meta)


def _npz_bytes(tensors: dict, meta: dict) -> bytes:
    if _NPZ_META in tensors:
        raise ValueError(f"shendu.save: the tensor name {_NPZ_META!r} is reserved by the .npz "
                         "format")
    blob = _np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=backend.uint8)
    buffer = io.BytesIO()
    _np.savez(buffer, **tensors, **{_NPZ_META: blob})
    return buffer.getvalue()


def save(obj, path, format=None) -> None:  # noqa: A002 - torch-like keyword
    """Save Tensors, state_dicts and nested checkpoints to ``path`` atomically, without pickle.

    Args:
        obj: a Tensor/array, or dicts/lists/tuples of them and JSON values (see module doc).
        path: destination file (str or os.PathLike); its directory must exist.
        format: "safetensors" or "npz"; default safetensors when installed, else npz.
    """
    path = os.fspath(path)
    if format is None:
        format = "safetensors" if _st_numpy is not None else "npz"  # noqa: A001
    if format not in ("safetensors", "npz"):
        raise ValueError(f"shendu.save: format must be 'safetensors' or 'npz', got {format!r}")
    if format == "safetensors" and _st_numpy is None:
        raise RuntimeError("shendu.save: format='safetensors' needs the safetensors package "
                           "(pip install shendu[checkpoints]); or use format='npz'")
    tensors: dict = {}
    tree = _encode(obj, (), tensors)
    meta = {"shendu.format": FORMAT_VERSION, "shendu.tree": json.dumps(tree)}
    payload = (_safetensors_bytes if format == "safetensors" else _npz_bytes)(tensors, meta)
    atomic_write(path, payload)


# --- reading -------------------------------------------------------------------------------

def _safetensors_header(raw: bytes, path: str) -> dict:
    """Parse and sanity-check the safetensors header, so corruption is reported by name."""
    if len(raw) < 8:
        raise ValueError(f"shendu.load: {path} is truncated ({len(raw)} bytes): not a "
                         "safetensors or .npz checkpoint")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError(f"shendu.load: {path} is truncated or not a checkpoint: header says "
                         f"{size} bytes but only {len(raw) - 8} follow")
    try:
        header = json.loads(raw[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"shendu.load: {path} is corrupted: unreadable safetensors header "
                         f"({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"shendu.load: {path} is corrupted: header is not a JSON object")
    data_size = len(raw) - 8 - size
    for name, info in header.items():
        if name == "__metadata__":
            continue
        end = info.get("data_offsets", [0, 0])[1] if isinstance(info, dict) else None
        if not isinstance(end, int) or end > data_size:
            raise ValueError(f"shendu.load: {path} is truncated or corrupted: tensor {name!r} "
                             f"needs bytes up to {end} but the data section has {data_size}")
    return header


def _read_safetensors(raw: bytes, path: str):
    header = _safetensors_header(raw, path)
    if _st_numpy is None:
        raise RuntimeError(f"shendu.load: {path} is a safetensors file; install the "
                           "safetensors package (pip install shendu[checkpoints]) to read it")
    try:
        arrays = _st_numpy.load(raw)
    except Exception as err:  # noqa: BLE001 - SafetensorError has no stable import path
        raise ValueError(f"shendu.load: {path} is corrupted: {err}") from None
    return arrays, header.get("__metadata__") or {}


def _read_npz(raw: bytes, path: str):
    try:
        with _np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise ValueError(f"shendu.load: {path} is a truncated or corrupted .npz file "
                         f"({err})") from None
    meta = arrays.pop(_NPZ_META, None)
    if meta is None:
        return arrays, {}
    try:
        return arrays, json.loads(meta.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"shendu.load: {path} is corrupted: unreadable metadata ({err})") \
            from None


def load(path, device=None):
    """Load what ``save`` wrote (or any safetensors / pickle-free .npz file), never running code.

    Arrays come back as shendu Tensors with their saved dtypes, on ``device`` (default "cpu").
    Raises FileNotFoundError for a missing file and ValueError naming the file when it is
    truncated or corrupted.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    reader = _read_npz if raw[:4] == _NPZ_MAGIC else _read_safetensors
    arrays, meta = reader(raw, path)
    device = backend.normalize_device(device)
    tensors = {}
    for name, array in arrays.items():
        if not array.flags.writeable:  # safetensors hands out read-only views of the bytes
            array = array.copy()
        tensors[name] = Tensor._wrap(backend.to_device(array, device))
    if "shendu.tree" not in meta:
        return tensors
    try:
        tree = json.loads(meta["shendu.tree"])
    except json.JSONDecodeError as err:
        raise ValueError(f"shendu.load: {path} is corrupted: unreadable shendu.tree metadata "
                         f"({err})") from None
    return _decode(tree, tensors, path)
