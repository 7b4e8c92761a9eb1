"""Checkpoints of process state: any JAX pytree in one safetensors file.

The leaves are stored with `safetensors.numpy.save_file` under their
`jax.tree_util.keystr` paths (`"['params'].dense.kernel"`); no pickle is
involved, so reading a checkpoint never runs code. The safetensors header
metadata holds one entry, `"fedjit"`, a JSON document:

  {"format": "fedjit.checkpoint", "format_version": 1,
   "fedjit_version": "0.1.0",
   "leaves": [{"key": "['params'].w", "dtype": "float32", "shape": [2, 3]},
              ...],                          # in `tree_flatten` order
   "metadata": {"round": 5}}                 # the caller's, JSON-serializable

The tree structure is not stored: `load_checkpoint` takes a template (for
example `process.initialize()`'s result, or `jax.eval_shape` of it), checks
that its leaf paths, dtypes and shapes are the ones in the file, and fills it.

Dtypes that safetensors' NumPy loader reads (bool, (u)int8..64,
float16/32/64) and bfloat16 are stored natively, so other safetensors tools
can read them; other dtypes (complex, float8, int4, ...) are stored as their
raw bytes (`uint8`) and typed PRNG keys as their key data, with the real dtype
in the JSON document.

Writes are atomic: the file is written to a temporary name in the target
directory, fsynced and moved into place with `os.replace`, so a crash or an
error leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
from typing import Any
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_metadata",
           "CheckpointMismatchError"]

FORMAT = "fedjit.checkpoint"
FORMAT_VERSION = 1
_METADATA_KEY = "fedjit"
_MAX_HEADER_BYTES = 100 * 1024 * 1024
# Stored as themselves: every safetensors version reads these back with NumPy
# (bfloat16 through ml_dtypes, which JAX installs).
_NATIVE_DTYPES = frozenset([
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
    "uint64", "float16", "float32", "float64", "bfloat16"])
_PY_SCALARS = (bool, int, float, complex)
_NOT_A_CHECKPOINT = ("is not a fedjit checkpoint or is corrupt ({reason}). "
                     "Checkpoints are written by save_checkpoint; if this one "
                     "was, the write did not finish or the file was damaged "
                     "afterwards: use an earlier checkpoint.")


class CheckpointMismatchError(ValueError):
  """A checkpoint's leaves differ from the template it is loaded into.

  A `ValueError`, so existing `except ValueError` handlers still catch it.
  Besides the message, it carries the details, for a caller (such as
  `fedjit.simulation.run_training`) that words the problem in its own terms.

  Attributes:
    path: The checkpoint file.
    where: The path (`keystr`) of the first leaf that differs, e.g.
      `".finalizer[0].count"`.
    template_leaf: The template's leaf there as `"path: type"`, e.g.
      `".finalizer[0].count: int32"`; None when the template has no more.
    file_leaf: The file's leaf there, the same way; None when it has no more.
    template_leaves: The number of leaves in the template.
    file_leaves: The number of leaves in the file.

  Example:
    >>> try:
    ...   load_checkpoint(path, process.initialize())
    ... except CheckpointMismatchError as e:
    ...   print(e.template_leaf, e.file_leaf, e.template_leaves, e.file_leaves)
  """

  def __init__(self, message: str, *, path: pathlib.Path, where: str,
               template_leaf: str | None, file_leaf: str | None,
               template_leaves: int, file_leaves: int):
    super().__init__(message)
    self.path, self.where = path, where
    self.template_leaf, self.file_leaf = template_leaf, file_leaf
    self.template_leaves, self.file_leaves = template_leaves, file_leaves


# ----------------------------------------------------------------- leaves

def _keys(paths) -> list[str]:
  """`keystr` of each path, made unique with a `#n` suffix where needed."""
  keys, seen = [], set()
  for path in paths:
    key = base = jax.tree_util.keystr(path)
    n = 1
    while key in seen:
      key = f"{base}#{n}"
      n += 1
    seen.add(key)
    keys.append(key)
  return keys


def _is_key_dtype(dtype) -> bool:
  return jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _spec(key: str, leaf: Any) -> tuple[str, tuple[int, ...]]:
  """The (dtype name, shape) a leaf is stored or expected as."""
  if isinstance(leaf, _PY_SCALARS):
    dtype, shape = np.asarray(leaf).dtype, ()
  elif isinstance(leaf, (np.ndarray, np.generic, jax.Array,
                         jax.ShapeDtypeStruct)):
    if _is_key_dtype(leaf.dtype):
      return str(leaf.dtype), tuple(leaf.shape)
    dtype, shape = np.dtype(leaf.dtype), tuple(leaf.shape)
  else:
    raise TypeError(
        f"Cannot checkpoint the leaf at {key or '<root>'}: expected a NumPy or "
        f"JAX array or a scalar, got {type(leaf).__module__}."
        f"{type(leaf).__qualname__}. Convert it to an array, or register its "
        f"type as a pytree node (jax.tree_util.register_pytree_node) so its "
        f"arrays become leaves.")
  if dtype.hasobject or dtype.fields is not None or not (
      dtype.kind in "biufc" or dtype.type.__module__ == "ml_dtypes"):
    raise TypeError(
        f"Cannot checkpoint the leaf at {key or '<root>'}: dtype {dtype} is "
        f"not a numeric array dtype (expected bool, int, float or complex).")
  return dtype.name, shape


def _describe(dtype: str, shape) -> str:
  """Compact type string: `float32[2,3]`, or `float32` for a scalar."""
  return f"{dtype}[{','.join(map(str, shape))}]" if len(shape) else dtype


def _encode(key: str, leaf: Any) -> tuple[dict[str, Any], np.ndarray]:
  """A leaf's JSON record and the array safetensors stores for it."""
  dtype, shape = _spec(key, leaf)
  record: dict[str, Any] = {"key": key, "dtype": dtype, "shape": list(shape)}
  if isinstance(leaf, jax.Array) and _is_key_dtype(leaf.dtype):
    data = np.asarray(jax.random.key_data(leaf))
    record["encoding"] = "prng_key"
    record["impl"] = str(jax.random.key_impl(leaf))
    record["stored"] = {"dtype": data.dtype.name, "shape": list(data.shape)}
  else:
    try:
      data = np.asarray(leaf)
    except Exception as e:  # e.g. a tracer, a non-addressable global array
      raise TypeError(f"Cannot checkpoint the leaf at {key or '<root>'}: "
                      f"{type(e).__name__}: {e}") from e
  if data.dtype.byteorder == ">":
    data = data.astype(data.dtype.newbyteorder("<"))
  if not data.flags.c_contiguous:
    data = data.copy(order="C")
  if data.dtype.name not in _NATIVE_DTYPES:  # raw bytes, typed by `record`
    record.setdefault("encoding", "raw")
    data = data.reshape(-1).view(np.uint8)
  return record, data


def _decode(record: dict[str, Any], buffer: bytearray) -> Any:
  """The NumPy array (or typed key array) a record and its bytes hold."""
  stored = record.get("stored", record)
  dtype = np.dtype(stored["dtype"])
  shape = tuple(stored["shape"])
  if len(buffer) != math.prod(shape) * dtype.itemsize:
    raise ValueError(f"{len(buffer)} bytes for {_describe(dtype.name, shape)}")
  array = np.frombuffer(buffer, dtype=dtype).reshape(shape)
  if record.get("encoding") == "prng_key":
    return jax.random.wrap_key_data(array, impl=record["impl"])
  return array


def _restore(template_leaf: Any, value: Any) -> Any:
  """`value` as the same kind of leaf as `template_leaf`."""
  if isinstance(template_leaf, _PY_SCALARS):
    return type(template_leaf)(value.item())
  if isinstance(template_leaf, np.generic):
    return value[()]
  if isinstance(template_leaf, np.ndarray):
    return value
  if isinstance(template_leaf, jax.ShapeDtypeStruct):
    return jax.device_put(value, template_leaf.sharding)
  # A jax.Array: keep an explicit placement, stay uncommitted otherwise.
  committed = getattr(template_leaf, "committed", False)
  return jax.device_put(value, template_leaf.sharding if committed else None)


# ----------------------------------------------------------------- header

def _corrupt(path: pathlib.Path, reason: str) -> ValueError:
  return ValueError(f"'{path}' " + _NOT_A_CHECKPOINT.format(reason=reason))


def _read_header(path: pathlib.Path, f) -> dict[str, Any]:
  """Validates the safetensors framing and returns the fedjit JSON document."""
  size = os.fstat(f.fileno()).st_size
  prefix = f.read(8)
  if len(prefix) < 8:
    raise _corrupt(path, f"only {size} bytes")
  n = int.from_bytes(prefix, "little")
  if n > min(size - 8, _MAX_HEADER_BYTES):
    raise _corrupt(path, f"header of {n} bytes in a file of {size} bytes")
  try:
    header = json.loads(f.read(n).decode("utf-8"))
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max([int(v["data_offsets"][1]) for v in tensors.values()],
              default=0)
  except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
    raise _corrupt(path, f"unreadable safetensors header: {e}") from None
  if 8 + n + end != size:
    raise _corrupt(path, f"the header describes {8 + n + end} bytes, the file "
                         f"has {size}: truncated or padded")
  metadata = header.get("__metadata__") or {}
  if not isinstance(metadata, dict) or _METADATA_KEY not in metadata:
    raise _corrupt(path, "a safetensors file without fedjit metadata")
  try:
    doc = json.loads(metadata[_METADATA_KEY])
    fmt, version = doc["format"], doc["format_version"]
    keys = [r["key"] for r in doc["leaves"]]
    for r in doc["leaves"]:
      if not (isinstance(r["key"], str) and isinstance(r["dtype"], str)
              and all(isinstance(d, int) for d in r["shape"])):
        raise ValueError(f"malformed leaf record {r!r}")
  except (ValueError, TypeError, KeyError) as e:
    raise _corrupt(path, f"unreadable fedjit metadata: {e!r}") from None
  if fmt != FORMAT:
    raise _corrupt(path, f"format {fmt!r}, expected {FORMAT!r}")
  if not isinstance(version, int) or version > FORMAT_VERSION:
    raise ValueError(
        f"'{path}' is a fedjit checkpoint of format version {version!r}, "
        f"written by fedjit {doc.get('fedjit_version')}; this fedjit reads "
        f"versions up to {FORMAT_VERSION}. Upgrade fedjit to load it.")
  if sorted(keys) != sorted(tensors):
    raise _corrupt(path, "the stored arrays differ from the listed leaves")
  return doc


def _open(path: str | os.PathLike):
  path = pathlib.Path(path)
  try:
    return path, open(path, "rb")
  except FileNotFoundError:
    raise FileNotFoundError(
        2, f"No checkpoint at '{path}' (write one with save_checkpoint)",
        str(path)) from None


# -------------------------------------------------------------------- API

def save_checkpoint(path: str | os.PathLike, state: Any, *,
                    metadata: dict[str, Any] | None = None) -> pathlib.Path:
  """Writes a pytree of arrays to a safetensors file, atomically.

  Leaves may be NumPy or JAX arrays (including typed PRNG key arrays), NumPy
  scalars and Python `bool`/`int`/`float`/`complex`; `None` and empty
  containers are structure, as in `jax.tree_util`. Parent directories are
  created. The file is written under a temporary name in the same directory,
  fsynced and renamed over `path`, so on any error `path` keeps its previous
  contents and no temporary file is left.

  Args:
    path: The checkpoint file, conventionally `*.safetensors`.
    state: The pytree to save, e.g. a process's state.
    metadata: Extra JSON-serializable information, e.g. `{"round": 5}`,
      returned by `read_checkpoint_metadata` (after a JSON round trip: tuples
      come back as lists, dict keys as strings).

  Returns:
    The path written, as a `pathlib.Path`.

  Raises:
    TypeError: A leaf is not an array or scalar of a numeric dtype, or
      `metadata` is not a JSON-serializable dict.
    OSError: The file could not be written.

  Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> state = {"w": np.ones((2, 3), np.float32), "step": np.int32(4)}
    >>> p = save_checkpoint(os.path.join(d, "ckpt.safetensors"), state,
    ...                     metadata={"round": 5})
    >>> p.name
    'ckpt.safetensors'
  """
  path = pathlib.Path(path)
  if metadata is None:
    metadata = {}
  if not isinstance(metadata, dict):
    raise TypeError(f"metadata must be a dict of JSON-serializable values, "
                    f"got {type(metadata).__name__}; e.g. {{'round': 5}}.")
  paths_leaves, _ = jax.tree_util.tree_flatten_with_path(state)
  keys = _keys(p for p, _ in paths_leaves)
  records, tensors = [], {}
  for key, (_, leaf) in zip(keys, paths_leaves):
    record, tensors[key] = _encode(key, leaf)
    records.append(record)
  doc = {"format": FORMAT, "format_version": FORMAT_VERSION,
         "fedjit_version": _fedjit_version(), "leaves": records,
         "metadata": metadata}
  try:
    text = json.dumps(doc)
  except (TypeError, ValueError) as e:
    raise TypeError(f"metadata must be JSON-serializable: {e}; got "
                    f"{metadata!r}.") from e

  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
  try:
    safetensors.numpy.save_file(tensors, tmp, metadata={_METADATA_KEY: text})
    with open(tmp, "r+b") as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise
  _fsync_dir(path.parent)
  return path


def load_checkpoint(path: str | os.PathLike, template: Any) -> Any:
  """Reads a checkpoint into the structure of `template`.

  `template` gives the tree structure and the kind of each leaf: NumPy arrays
  come back as NumPy arrays, NumPy scalars as NumPy scalars of the same
  dtype, Python scalars as Python scalars, JAX arrays and
  `jax.ShapeDtypeStruct`s as JAX arrays (on the template's sharding when it
  has an explicit one). Its values are not used, so `jax.eval_shape` of an
  initializer works as well as the initial state itself.

  Args:
    path: A file written by `save_checkpoint`.
    template: A pytree with the structure, leaf paths, dtypes and shapes of
      the saved state, e.g. `process.initialize()`.

  Returns:
    A pytree like `template` holding the saved values.

  Raises:
    FileNotFoundError: There is no file at `path`.
    ValueError: The file is not a fedjit checkpoint or is corrupt.
    CheckpointMismatchError: (a `ValueError`) The file's leaves (count,
      paths, dtypes, shapes) differ from the template's; the message names
      the file and the first differing leaf, and the exception's attributes
      hold them.

  Example:
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> _ = save_checkpoint(p, {"w": np.arange(3, dtype=np.float32)})
    >>> load_checkpoint(p, {"w": np.zeros(3, np.float32)})
    {'w': array([0., 1., 2.], dtype=float32)}
  """
  paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
  keys = _keys(p for p, _ in paths_leaves)
  expected = [_spec(k, leaf) for k, (_, leaf) in zip(keys, paths_leaves)]
  path, f = _open(path)
  with f:
    doc = _read_header(path, f)
    _check_matches(path, doc["leaves"], keys, expected)
    f.seek(0)
    data = f.read()
  try:
    buffers = {name: view["data"] for name, view in safetensors.deserialize(data)}
    values = [_decode(r, buffers[r["key"]]) for r in doc["leaves"]]
  except Exception as e:  # safetensors raises its own SafetensorError
    raise _corrupt(path, f"{type(e).__name__}: {e}") from None
  leaves = [_restore(leaf, v) for (_, leaf), v in zip(paths_leaves, values)]
  return jax.tree_util.tree_unflatten(treedef, leaves)


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """Returns the `metadata` a checkpoint was saved with, reading only its header.

  Args:
    path: A file written by `save_checkpoint`.

  Returns:
    The caller's metadata dict (`{}` if none was given), after a JSON round
    trip.

  Raises:
    FileNotFoundError: There is no file at `path`.
    ValueError: The file is not a fedjit checkpoint or is corrupt.

  Example:
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> _ = save_checkpoint(p, [np.zeros(2)], metadata={"round": 5})
    >>> read_checkpoint_metadata(p)
    {'round': 5}
  """
  path, f = _open(path)
  with f:
    doc = _read_header(path, f)
  metadata = doc.get("metadata", {})
  if not isinstance(metadata, dict):
    raise _corrupt(path, "metadata is not a JSON object")
  return metadata


# ---------------------------------------------------------------- helpers

def _check_matches(path: pathlib.Path, records: list[dict[str, Any]],
                   keys: list[str], expected: list[tuple[str, tuple]]) -> None:
  """Raises a CheckpointMismatchError naming the first leaf where file and
  template differ."""
  def leaf(key: str | None, dtype_shape: tuple | None) -> str | None:
    return None if key is None else f"{key or '<root>'}: {_describe(*dtype_shape)}"

  def fail(where: str, wants: str, holds: str, i: int):
    mine = (keys[i], expected[i]) if i < len(keys) else (None, None)
    theirs = ((records[i]["key"], (records[i]["dtype"], records[i]["shape"]))
              if i < len(records) else (None, None))
    raise CheckpointMismatchError(
        f"Checkpoint '{path}' does not match the template at {where}: the "
        f"template expects {wants}, the file holds {holds}. Was this "
        f"checkpoint written by a different model or process? Load it with a "
        f"template of the state it was saved from (e.g. the same process's "
        f"initialize()). The file holds {len(records)} leaves, the template "
        f"has {len(keys)}.", path=path,
        where=(mine[0] if mine[0] is not None else theirs[0]) or "<root>",
        template_leaf=leaf(*mine), file_leaf=leaf(*theirs),
        template_leaves=len(keys), file_leaves=len(records))

  for i in range(max(len(records), len(keys))):
    if i >= len(keys):
      r = records[i]
      fail(r["key"] or "<root>", "no more leaves",
           f"an extra leaf {r['key'] or '<root>'}: "
           f"{_describe(r['dtype'], r['shape'])}", i)
    wants = _describe(*expected[i])
    if i >= len(records):
      fail(keys[i] or "<root>", f"a leaf {keys[i] or '<root>'}: {wants}",
           "no more leaves", i)
    r = records[i]
    if r["key"] != keys[i]:
      fail(f"{keys[i] or '<root>'} (leaf {i})",
           f"{keys[i] or '<root>'}: {wants}",
           f"{r['key'] or '<root>'}: {_describe(r['dtype'], r['shape'])}", i)
    holds = _describe(r["dtype"], r["shape"])
    if holds != wants:
      fail(keys[i] or "<root>", wants, holds, i)


def _fedjit_version() -> str | None:
  try:
    import fedjit  # pylint: disable=import-outside-toplevel
    return str(fedjit.__version__)
  except (ImportError, AttributeError):
    return None


def _fsync_dir(directory: pathlib.Path) -> None:
  """Makes the rename durable where the platform allows (POSIX)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)
