"""The bytes of a checkpoint: safetensors / ``.npz`` encoding, format sniffing, atomic writes.

``shendu.serialization`` turns objects into named arrays plus JSON metadata; this module turns
those into a file and back. It refuses pickle in every form it can recognise (a ``torch.save``
zip, a legacy ``torch.save`` stream, a bare pickle, an ``.npz`` holding object arrays), reads
bfloat16 safetensors (which NumPy has no dtype for) as float32, and writes files so that a
crash or a kill at any moment leaves the previous file in place and no temporary behind for
long (see ``atomic_write``).
"""
from __future__ import annotations

import errno
import io
import json
import os
import secrets
import socket
import time
import zipfile

from shendu import backend

try:  # optional extra: pip install shendu[checkpoints]
    import safetensors
    import safetensors.numpy as _st_numpy
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    safetensors = None
    _st_numpy = None

NPZ_META = "__shendu_metadata__"
_NPZ_MAGIC = b"PK\x03\x04"
_np = backend.namespace("cpu")

# safetensors dtype names -> NumPy; BF16 has no NumPy dtype and is widened to float32 on read
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64",
                       "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
                       "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
                       "C64": "complex64"}

TORCH_CONVERSION = (
    "shendu never unpickles, because unpickling runs whatever code the file names. Convert it "
    "once, in PyTorch, where you trust the file: `import torch, safetensors.torch; "
    "sd = torch.load(path, weights_only=True)` (for a whole model saved with torch.save(model), "
    "`sd = torch.load(path, weights_only=False).state_dict()`; for a checkpoint dict, take its "
    "state_dict entry), then `safetensors.torch.save_file(sd, 'model.safetensors')` and "
    "`shendu.load('model.safetensors')`")


# --- writing -------------------------------------------------------------------------------

def safetensors_bytes(tensors: dict, meta: dict) -> bytes:
    return _st_numpy.save(tensors, metadata=meta)


def npz_bytes(tensors: dict, meta: dict) -> bytes:
    if NPZ_META in tensors:
        raise ValueError(f"shendu.save: the tensor name {NPZ_META!r} is reserved by the .npz "
                         "format")
    blob = _np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=backend.uint8)
    buffer = io.BytesIO()
    _np.savez(buffer, **tensors, **{NPZ_META: blob})
    return buffer.getvalue()


def _host_tag() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def _temp_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _is_stale(directory: str, name: str, prefix: str) -> bool:
    """Whether ``name`` is a temporary of this target left by a save that can no longer finish:
    its writer (pid on this host) is dead, or it is a day old (a writer on another host)."""
    parts = name[len(prefix):-len(".tmp")].rsplit(".", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    host, pid = parts[0], int(parts[1])
    if os.name == "posix" and host == _host_tag():
        return not _pid_alive(pid)
    try:
        return time.time() - os.path.getmtime(os.path.join(directory, name)) > 86400
    except OSError:
        return False


def _sweep_stale_temporaries(directory: str, path: str) -> None:
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(".tmp") and _is_stale(directory, name,
                                                                           prefix):
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass  # another process swept it first, or it is not ours to remove


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable: on POSIX a rename is recorded in the folder's entry."""
    if os.name != "posix":
        return  # Windows cannot open a folder as a file; NTFS journals the rename
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # some network and FUSE file systems cannot sync a folder: nothing to do
    finally:
        os.close(fd)


def atomic_write(path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that ``path`` is always either the old or the new file.

    The bytes go to ``.<name>.<host>.<pid>.<random>.tmp`` beside the target (created with the
    permissions the umask allows, as ``open`` would), which is fsync'ed, ``os.replace``'d over
    the target, and the folder is fsync'ed so the rename survives a power cut. On an error the
    temporary is removed. A process killed mid-write cannot remove it, so every save first
    removes the temporaries of the same target whose writer is dead (same host) or that are a
    day old (another host), and leaves those of live writers alone.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"shendu.save: cannot write {path!r}: the folder {directory!r} "
                                "does not exist (create it first, e.g. "
                                "os.makedirs(folder, exist_ok=True))")
    _sweep_stale_temporaries(directory, path)
    tmp = os.path.join(directory, f"{_temp_prefix(path)}{_host_tag()}.{os.getpid()}."
                                  f"{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)  # the umask applies, unlike tempfile.mkstemp's 0600
    except PermissionError:
        raise PermissionError(f"shendu.save: cannot write {path!r}: no permission to create "
                              f"files in the folder {directory!r}") from None
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
    _fsync_directory(directory)


# --- reading -------------------------------------------------------------------------------

def _looks_like_safetensors(raw: bytes) -> bool:
    # an 8-byte header length, then the JSON header; checked before the pickle test because a
    # header of 640 + 256k bytes starts with the same two bytes as a protocol-2 pickle
    return raw[8:9] == b"{"


def _is_pickle(raw: bytes) -> bool:
    # protocol 2+ pickles start with PROTO (0x80) and the protocol number; the legacy
    # torch.save stream is a protocol-2 pickle
    return len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def read_checkpoint(raw: bytes, name: str):
    """(arrays by name, metadata dict) of a checkpoint's bytes; ``name`` is used in errors."""
    if _looks_like_safetensors(raw):
        return _read_safetensors(raw, name)
    if _is_pickle(raw):
        raise ValueError(f"shendu.load: {name} is a pickle file (a legacy torch.save file or "
                         f"pickle.dump output), not a shendu checkpoint. {TORCH_CONVERSION}")
    if raw[:4] == _NPZ_MAGIC:
        return _read_npz(raw, name)
    return _read_safetensors(raw, name)


def _safetensors_header(raw: bytes, name: str) -> dict:
    """Parse and sanity-check the safetensors header, so corruption is reported by name."""
    if len(raw) < 8:
        raise ValueError(f"shendu.load: {name} is truncated ({len(raw)} bytes): not a "
                         "safetensors or .npz checkpoint")
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise ValueError(f"shendu.load: {name} is truncated or not a checkpoint: header says "
                         f"{size} bytes but only {len(raw) - 8} follow")
    try:
        header = json.loads(raw[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"shendu.load: {name} is corrupted: unreadable safetensors header "
                         f"({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"shendu.load: {name} is corrupted: header is not a JSON object")
    data_size = len(raw) - 8 - size
    for key, info in header.items():
        if key == "__metadata__":
            continue
        end = info.get("data_offsets", [0, 0])[1] if isinstance(info, dict) else None
        if not isinstance(end, int) or end > data_size:
            raise ValueError(f"shendu.load: {name} is truncated or corrupted: tensor {key!r} "
                             f"needs bytes up to {end} but the data section has {data_size}")
    return header


def _bfloat16_to_float32(data, shape):
    """bfloat16 is the top half of a float32, so widening is exact: shift the 16 bits up."""
    halves = _np.frombuffer(data, dtype="<u2").astype(_np.uint32)
    return (halves << 16).view(_np.float32).reshape(shape)


def _read_safetensors(raw: bytes, name: str):
    header = _safetensors_header(raw, name)
    if _st_numpy is None:
        raise RuntimeError(f"shendu.load: {name} is a safetensors file; install the "
                           "safetensors package (pip install shendu[checkpoints]) to read it")
    try:
        entries = safetensors.deserialize(raw)
    except Exception as err:  # noqa: BLE001 - SafetensorError has no stable import path
        raise ValueError(f"shendu.load: {name} is corrupted: {err}") from None
    arrays = {}
    for key, entry in entries:
        dtype, shape = entry["dtype"], entry["shape"]
        if dtype == "BF16":
            arrays[key] = _bfloat16_to_float32(entry["data"], shape)
        elif dtype in _SAFETENSORS_DTYPES:
            # deserialize hands out fresh bytearrays, so these arrays are writable
            arrays[key] = _np.frombuffer(entry["data"], dtype=_SAFETENSORS_DTYPES[dtype]) \
                .reshape(shape)
        else:
            raise ValueError(f"shendu.load: {name}: tensor {key!r} has dtype {dtype}, which "
                             f"NumPy cannot represent; shendu reads "
                             f"{', '.join(sorted(_SAFETENSORS_DTYPES))} and BF16 (as float32)")
    return arrays, header.get("__metadata__") or {}


def _refuse_foreign_zip(raw: bytes, name: str) -> None:
    """A zip whose members are not all ``.npy`` arrays is not an ``.npz``: most likely a
    ``torch.save`` file (``archive/data.pkl`` plus storages), which must not be unpickled."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"shendu.load: {name} is a truncated or corrupted .npz file "
                         f"({err})") from None
    pickles = [m for m in members if m.endswith(".pkl")]
    if pickles:
        raise ValueError(f"shendu.load: {name} is a torch.save (pickle) file: its zip holds "
                         f"{pickles[0]!r}. {TORCH_CONVERSION}")
    foreign = [m for m in members if not m.endswith(".npy")]
    if foreign:
        raise ValueError(f"shendu.load: {name} is a zip archive but not a NumPy .npz "
                         f"checkpoint: member {foreign[0]!r} is not a .npy array. If it was "
                         f"written by torch.save: {TORCH_CONVERSION}")


def _read_npz(raw: bytes, name: str):
    _refuse_foreign_zip(raw, name)
    try:
        with _np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise ValueError(f"shendu.load: {name} is a truncated or corrupted .npz file "
                         f"({err})") from None
    meta = arrays.pop(NPZ_META, None)
    if meta is None:
        return arrays, {}
    try:
        return arrays, json.loads(meta.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"shendu.load: {name} is corrupted: unreadable metadata ({err})") \
            from None
