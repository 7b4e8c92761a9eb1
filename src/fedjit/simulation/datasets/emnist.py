"""Federated EMNIST: handwritten digits and letters grouped by writer, as
TFF's `tff.simulation.datasets.emnist.load_data`.

Source: TensorFlow Federated's public bucket
(`https://storage.googleapis.com/tff-datasets-public/`). TFF derived the data
from LEAF's pre-processing (https://github.com/TalwalkarLab/leaf,
https://arxiv.org/abs/1812.01097) of Extended MNIST (Cohen et al. 2017,
https://arxiv.org/abs/1702.05373, itself from NIST Special Database 19),
grouping examples by writer.

License: TFF's documentation states no license for these files. EMNIST comes
from NIST Special Database 19 under NIST's terms, and LEAF's code is BSD
2-clause. Check the upstream terms before you redistribute the data.

Size: `emnist_all.sqlite.lzma` is 170.5 MB to download and 4.7 GB once
decompressed in the cache; it holds 3,383 digit writers (382,705 examples)
and 3,400 writers of digits and letters (749,068 examples) of 28x28 float32
images. The HDF5 archives are smaller (one task each); their sizes are not
recorded here.

Two formats, the same examples:

* `format="sqlite"` (TFF's current one): `emnist_all.sqlite.lzma`,
  170,507,172 bytes, which decompresses to `emnist_all.sqlite` in the cache
  (about 4.7 GB). Table `examples(split_name, client_id,
  serialized_example_proto)` holds one serialized `tf.train.Example` per row
  (features `pixels`: 784 floats, `label`: one int64), and table
  `client_metadata(client_id, split_name, num_examples)` lists the clients.
  One database holds both tasks: the splits are `digits_only_train`,
  `digits_only_test`, `all_train` and `all_test`. The examples are decoded
  by a small protobuf wire-format reader here; neither TensorFlow nor the
  protobuf package is needed.
* `format="hdf5"` (TFF's format before 2021): `fed_emnist_digitsonly.tar.bz2`
  or `fed_emnist.tar.bz2`, holding `<prefix>_train.h5` and `<prefix>_test.h5`
  with `examples/<writer id>/label` (int32 [n]) and
  `examples/<writer id>/pixels` (float32 [n, 28, 28]). Needs h5py
  (`pip install 'fedjit[datasets]'`).

Checksums: the SHA-256s of the two HDF5 archives are the ones TFF pinned in
its own loader. TFF pins no checksum for `emnist_all.sqlite.lzma` (its
`download.get_compressed_file` checks nothing); `EMNIST_SQLITE_SHA256` comes
from a third-party provenance record of the same URL and size, and has not
been checked against a download here. If the upstream file ever differs, the
download fails with a checksum error; put a file you trust in the cache
folder yourself (as `emnist_all.sqlite.lzma`, or decompressed as
`emnist_all.sqlite`) and it is used as it is.

Example:
  >>> train, test = fedjit.simulation.datasets.emnist.load_data(download=True)
  >>> len(train.client_ids)
  3383
  >>> train.create_dataset_for_client(train.client_ids[0]).element_spec
  StructType('<label=int32,pixels=float32[28,28]>')
"""

from __future__ import annotations

import contextlib
import lzma
import os
import pathlib
import shutil
import sqlite3
import tarfile
import threading
import urllib.request
from typing import Callable, Iterator

import numpy as np

from fedjit.simulation._client_data import ClientData
from fedjit.simulation._dataset import Dataset
from fedjit.simulation.datasets import _download
from fedjit.simulation.datasets._download import Source, atomic_path, fetch

__all__ = [
    "load_data",
    "DatasetFormatError",
    "EMNIST_SQLITE",
    "EMNIST_SQLITE_SHA256",
    "FED_EMNIST_DIGITSONLY_HDF5",
    "FED_EMNIST_HDF5",
]

_BUCKET = "https://storage.googleapis.com/tff-datasets-public/"

# Not published by TFF: taken from a third-party provenance record of this URL
# (170,507,172 bytes; decompressed 4,708,990,976 bytes with SHA-256
# 239b48fb3b3d69e70406d18a0605c821d4db3c803443c64788736bcb9f79ac56). Unverified.
EMNIST_SQLITE_SHA256 = "c3aaf91b4cf4e69d53d81627ad119eccdc878ff906f68e66063ff10f67faad48"

EMNIST_SQLITE = Source(
    filename="emnist_all.sqlite.lzma",
    url=_BUCKET + "emnist_all.sqlite.lzma",
    sha256=EMNIST_SQLITE_SHA256,
    description="Federated EMNIST (TFF's SQLite database, LZMA-compressed)",
    size=170_507_172,
)
FED_EMNIST_DIGITSONLY_HDF5 = Source(  # checksum pinned by TFF's HDF5 loader
    filename="fed_emnist_digitsonly.tar.bz2",
    url=_BUCKET + "fed_emnist_digitsonly.tar.bz2",
    sha256="55333deb8546765427c385710ca5e7301e16f4ed8b60c1dc5ae224b42bd5b14b",
    description="Federated EMNIST, digits only (TFF's HDF5 files)",
)
FED_EMNIST_HDF5 = Source(  # checksum pinned by TFF's HDF5 loader
    filename="fed_emnist.tar.bz2",
    url=_BUCKET + "fed_emnist.tar.bz2",
    sha256="fe1ed5a502cea3a952eb105920bff8cffb32836b5173cb18a57a32c3606f3ea0",
    description="Federated EMNIST, digits and letters (TFF's HDF5 files)",
)

_CHUNK = 1 << 20
_SHAPE = (28, 28)


class DatasetFormatError(ValueError):
  """A cached dataset file is corrupt, incomplete or not in the expected layout."""


# ----------------------------------------------------------------- tf.Example

class _ProtoError(ValueError):
  pass


def _varint(buf, pos: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    if pos >= len(buf):
      raise _ProtoError("truncated varint")
    byte = buf[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if not byte & 0x80:
      return result & 0xFFFFFFFFFFFFFFFF, pos
    shift += 7
    if shift >= 70:
      raise _ProtoError("varint longer than 10 bytes")


def _fields(buf) -> Iterator[tuple[int, int, object]]:
  """Yields `(field number, wire type, value)`: an int for varints, the raw
  bytes (a memoryview) for fixed32, fixed64 and length-delimited fields."""
  pos, end = 0, len(buf)
  while pos < end:
    key, pos = _varint(buf, pos)
    field, wire = key >> 3, key & 7
    if field == 0:
      raise _ProtoError("field number 0")
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire in (1, 5):
      size = 8 if wire == 1 else 4
      value, pos = buf[pos:pos + size], pos + size
    elif wire == 2:
      size, pos = _varint(buf, pos)
      value, pos = buf[pos:pos + size], pos + size
    else:
      raise _ProtoError(f"unsupported wire type {wire} (field {field})")
    if pos > end:
      raise _ProtoError(f"field {field} runs past the end of the message")
    yield field, wire, value


def _float_list(buf) -> np.ndarray:
  parts = []
  for field, wire, value in _fields(buf):
    if field != 1:
      continue
    if wire == 5 or (wire == 2 and len(value) % 4 == 0):  # unpacked or packed
      parts.append(np.frombuffer(value, "<f4"))
    else:
      raise _ProtoError(f"FloatList.value with wire type {wire} and {len(value)} bytes")
  return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _int64_list(buf) -> np.ndarray:
  values = []
  for field, wire, value in _fields(buf):
    if field != 1:
      continue
    if wire == 0:  # unpacked
      values.append(value)
    elif wire == 2:  # packed
      pos = 0
      while pos < len(value):
        v, pos = _varint(value, pos)
        values.append(v)
    else:
      raise _ProtoError(f"Int64List.value with wire type {wire}")
  return np.array([v - (1 << 64) if v >> 63 else v for v in values], np.int64)


def _bytes_list(buf) -> list[bytes]:
  out = []
  for field, wire, value in _fields(buf):
    if field == 1:
      if wire != 2:
        raise _ProtoError(f"BytesList.value with wire type {wire}")
      out.append(bytes(value))
  return out


_KINDS = {1: _bytes_list, 2: _float_list, 3: _int64_list}


def _feature(buf):
  value = None  # `kind` is a oneof: the last one present wins
  for field, wire, payload in _fields(buf):
    if field in _KINDS:
      if wire != 2:
        raise _ProtoError(f"Feature field {field} with wire type {wire}")
      value = _KINDS[field](payload)
  return value


def _parse_tf_example(data: bytes) -> dict[str, np.ndarray | list[bytes] | None]:
  """Decodes a serialized `tf.train.Example` without TensorFlow or protobuf.

  `Example{features: Features{feature: map<string, Feature>}}`, where a
  `Feature` holds a `BytesList` (field 1), `FloatList` (2, packed float32) or
  `Int64List` (3, packed varints); packed and unpacked repeated fields are
  both read, unknown fields skipped, and repeated messages merged as protobuf
  does.

  Returns:
    `{name: values}`: a float32 array, an int64 array, a list of bytes, or
    None for a feature with no list.

  Example:
    >>> _parse_tf_example(bytes.fromhex("0a100a0e0a056c6162656c12051a030a0107"))
    {'label': array([7])}
  """
  buf = memoryview(data)
  features: dict = {}
  for field, wire, example_features in _fields(buf):
    if field != 1:
      continue
    if wire != 2:
      raise _ProtoError(f"Example.features with wire type {wire}")
    for f, w, entry in _fields(example_features):
      if f != 1:
        continue
      if w != 2:
        raise _ProtoError(f"Features.feature with wire type {w}")
      key, value = "", None
      for ef, ew, payload in _fields(entry):
        if ef == 1 and ew == 2:
          key = bytes(payload).decode("utf-8")
        elif ef == 2 and ew == 2:
          value = _feature(payload)
      features[key] = value
  return features


def _decode_examples(blobs: list[bytes]) -> dict[str, np.ndarray]:
  """EMNIST examples as `{"label": int32[n], "pixels": float32[n, 28, 28]}`."""
  labels = np.empty(len(blobs), np.int32)
  pixels = np.empty((len(blobs),) + _SHAPE, np.float32)
  size = _SHAPE[0] * _SHAPE[1]
  for i, blob in enumerate(blobs):
    features = _parse_tf_example(blob)
    p, l = features.get("pixels"), features.get("label")
    if not (isinstance(p, np.ndarray) and p.dtype == np.float32 and p.size == size):
      raise _ProtoError(f"example {i}: feature 'pixels' must be a FloatList of {size} "
                        f"values, got {_describe(p)}")
    if not (isinstance(l, np.ndarray) and l.dtype == np.int64 and l.size == 1):
      raise _ProtoError(f"example {i}: feature 'label' must be an Int64List of one "
                        f"value, got {_describe(l)}")
    pixels[i] = p.reshape(_SHAPE)
    labels[i] = l[0]
  return {"label": labels, "pixels": pixels}


def _describe(value) -> str:
  if value is None:
    return "nothing"
  if isinstance(value, list):
    return f"a BytesList of {len(value)} values"
  kind = "FloatList" if value.dtype == np.float32 else "Int64List"
  return f"a {kind} of {value.size} values"


# -------------------------------------------------------------------- SQLite

def _corrupt(path: pathlib.Path, what: str, error: BaseException | str,
             source: Source | None = None) -> DatasetFormatError:
  again = (f" and load again with download=True (it is downloaded from {source.url})"
           if source is not None else " and load again with download=True")
  return DatasetFormatError(f"{what} {path} is corrupt or incomplete: {error}. Delete it{again}.")


def _decompress_lzma(archive: pathlib.Path, dest: pathlib.Path) -> None:
  """Decompresses `archive` into `dest` atomically (nothing left on error)."""
  try:
    with atomic_path(dest) as tmp, open(archive, "rb") as raw, \
        lzma.open(raw) as src, open(tmp, "wb") as out, \
        _download._progress(archive.stat().st_size, f"Decompressing {archive.name}") as bar:
      for chunk in iter(lambda: src.read(8 * _CHUNK), b""):
        out.write(chunk)
        if bar is not None:
          bar.update(raw.tell() - bar.n)
  except (lzma.LZMAError, EOFError) as e:
    raise _corrupt(archive, "The LZMA file", e, EMNIST_SQLITE) from e


def _connect(db: pathlib.Path) -> contextlib.closing:
  uri = db.resolve().as_uri() + "?mode=ro"
  return contextlib.closing(sqlite3.connect(uri, uri=True))


def _has_client_index(con: sqlite3.Connection) -> bool:
  for row in con.execute("PRAGMA index_list(examples)"):
    name = '"' + row[1].replace('"', '""') + '"'
    columns = [r[2] for r in con.execute(f"PRAGMA index_info({name})")]
    if columns[:1] == ["client_id"] or columns[:2] == ["split_name", "client_id"]:
      return True
  return False


class _SqliteSplit:
  """One split of TFF's EMNIST database, read lazily client by client.

  Without an index on `client_id` (TFF's format does not require one), a
  client's query would scan the whole table; then one scan maps every client
  to its row ids on first use, and each client reads only its rows.
  """

  def __init__(self, db: pathlib.Path, split: str):
    self.db, self.split = db, split
    self._rowids: dict[str, list[int]] | None = None
    self._lock = threading.Lock()
    try:
      with _connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"examples", "client_metadata"} - tables
        if missing:
          raise DatasetFormatError(
              f"The EMNIST database {db} has no table {', '.join(sorted(missing))} (it has "
              f"{sorted(tables)}); it is not TFF's emnist_all.sqlite. Delete it and load "
              f"again with download=True.")
        columns = {r[1] for r in con.execute("PRAGMA table_info(examples)")}
        missing = {"split_name", "client_id", "serialized_example_proto"} - columns
        if missing:
          raise DatasetFormatError(
              f"Table `examples` of the EMNIST database {db} lacks the columns "
              f"{sorted(missing)}; it is not TFF's emnist_all.sqlite.")
        self.client_ids = sorted(r[0] for r in con.execute(
            "SELECT DISTINCT client_id FROM client_metadata WHERE split_name = ?", (split,)))
        self._indexed = _has_client_index(con)
    except sqlite3.Error as e:
      raise _corrupt(db, "The EMNIST database", e, EMNIST_SQLITE) from e
    if not self.client_ids:
      raise DatasetFormatError(
          f"The EMNIST database {db} has no clients in split {split!r} (table "
          f"client_metadata); it is not TFF's emnist_all.sqlite or it is incomplete.")

  def _rowids_of(self, con: sqlite3.Connection, client_id: str) -> list[int]:
    with self._lock:
      if self._rowids is None:
        rowids: dict[str, list[int]] = {}
        for cid, rowid in con.execute(
            "SELECT client_id, rowid FROM examples WHERE split_name = ? ORDER BY rowid",
            (self.split,)):
          rowids.setdefault(cid, []).append(rowid)
        self._rowids = rowids
    return self._rowids.get(client_id, [])

  def _blobs(self, con: sqlite3.Connection, client_id: str) -> list[bytes]:
    if self._indexed:
      return [r[0] for r in con.execute(
          "SELECT serialized_example_proto FROM examples WHERE client_id = ? AND "
          "split_name = ? ORDER BY rowid", (client_id, self.split))]
    rowids, blobs = self._rowids_of(con, client_id), []
    for i in range(0, len(rowids), 500):  # within SQLite's limit on parameters
      part = rowids[i:i + 500]
      blobs += [r[0] for r in con.execute(
          f"SELECT serialized_example_proto FROM examples WHERE rowid IN "
          f"({','.join('?' * len(part))}) ORDER BY rowid", part)]
    return blobs

  def dataset(self, client_id: str) -> Dataset:
    try:
      with _connect(self.db) as con:
        blobs = self._blobs(con, client_id)
    except sqlite3.Error as e:
      raise _corrupt(self.db, "The EMNIST database", e, EMNIST_SQLITE) from e
    try:
      return Dataset.from_tensor_slices(_decode_examples(blobs))
    except (_ProtoError, UnicodeDecodeError) as e:
      raise DatasetFormatError(
          f"Could not decode the tf.train.Example protos of client {client_id!r} (split "
          f"{self.split!r}) in {self.db}: {e}.") from e


def _fetch(source: Source, cache: str | os.PathLike | None, download: bool,
           opener: Callable | None, alternative: str = "") -> pathlib.Path:
  try:
    return fetch(source, cache, download, opener or urllib.request.urlopen)
  except FileNotFoundError as e:
    if not alternative:
      raise
    raise FileNotFoundError(f"{e} {alternative}") from None


def _load_sqlite(only_digits, cache, download, opener) -> tuple[ClientData, ClientData]:
  db = _download.cache_dir(cache) / EMNIST_SQLITE.filename.removesuffix(".lzma")
  if not db.exists():
    archive = _fetch(EMNIST_SQLITE, cache, download, opener,
                     f"Or put the decompressed database at {db}.")
    _decompress_lzma(archive, db)
  prefix = "digits_only" if only_digits else "all"
  splits = [_SqliteSplit(db, f"{prefix}_{part}") for part in ("train", "test")]
  return tuple(ClientData.from_clients_and_fn(s.client_ids, s.dataset) for s in splits)


# ---------------------------------------------------------------------- HDF5

def _h5py():
  try:
    import h5py
  except ImportError as e:
    raise ImportError("format='hdf5' needs h5py: pip install 'fedjit[datasets]' (or "
                      "use format='sqlite', which needs nothing more).") from e
  return h5py


def _extract(archive: pathlib.Path, source: Source, wanted: dict[str, pathlib.Path]) -> None:
  """Extracts the regular files named `wanted` (by base name, wherever they
  sit in the archive) to the paths given, each atomically. Member paths are
  never used as output paths, so an archive cannot write elsewhere."""
  done, seen = set(), []
  try:
    with tarfile.open(archive, "r:bz2") as tar:
      for member in tar:
        seen.append(member.name)
        name = pathlib.PurePosixPath(member.name).name
        if name in wanted and name not in done and member.isfile():
          with atomic_path(wanted[name]) as tmp, tar.extractfile(member) as src, \
              open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
          done.add(name)
          if len(done) == len(wanted):
            return
  except (tarfile.TarError, EOFError, OSError) as e:
    raise _corrupt(archive, "The archive", f"{type(e).__name__}: {e}", source) from e
  missing = sorted(set(wanted) - done)
  raise DatasetFormatError(
      f"The archive {archive} does not contain {', '.join(missing)} (it holds "
      f"{seen[:5]}{' ...' if len(seen) > 5 else ''}); it is not {source.url}. Delete it "
      f"and load again with download=True.")


class _Hdf5Split:
  """One of TFF's EMNIST HDF5 files, read lazily client by client."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self.client_ids = sorted(self._read(lambda examples: list(examples.keys())))
    if not self.client_ids:
      raise DatasetFormatError(f"The EMNIST file {path} has no clients in group 'examples'.")

  def _read(self, fn: Callable, what: str = ""):
    h5py = _h5py()
    try:
      with h5py.File(self.path, "r") as f:
        if "examples" not in f:
          raise DatasetFormatError(
              f"The EMNIST file {self.path} has no group 'examples' (it has "
              f"{sorted(f.keys())}); it is not one of TFF's fed_emnist files.")
        return fn(f["examples"])
    except (OSError, KeyError) as e:
      raise _corrupt(self.path, "The HDF5 file", f"{what}{type(e).__name__}: {e}") from e

  def dataset(self, client_id: str) -> Dataset:
    def read(examples):
      group = examples[client_id]
      return (np.asarray(group["label"][()]), np.asarray(group["pixels"][()]))
    label, pixels = self._read(read, f"reading client {client_id!r}: ")
    n = label.shape[0] if label.ndim else -1
    if label.ndim != 1 or pixels.shape != (n,) + _SHAPE:
      raise DatasetFormatError(
          f"Client {client_id!r} in {self.path} has label shape {label.shape} and pixels "
          f"shape {pixels.shape}; expected [n] and [n, 28, 28].")
    return Dataset.from_tensor_slices({"label": label.astype(np.int32),
                                       "pixels": pixels.astype(np.float32)})


def _load_hdf5(only_digits, cache, download, opener) -> tuple[ClientData, ClientData]:
  source = FED_EMNIST_DIGITSONLY_HDF5 if only_digits else FED_EMNIST_HDF5
  prefix = source.filename.removesuffix(".tar.bz2")
  paths = {part: _download.cache_dir(cache) / f"{prefix}_{part}.h5" for part in ("train", "test")}
  missing = {p.name: p for p in paths.values() if not p.exists()}
  if missing:
    _h5py()  # fail before downloading when h5py is missing
    archive = _fetch(source, cache, download, opener,
                     f"Or put {' and '.join(missing)} in {paths['train'].parent}.")
    _extract(archive, source, missing)
  splits = [_Hdf5Split(paths[part]) for part in ("train", "test")]
  return tuple(ClientData.from_clients_and_fn(s.client_ids, s.dataset) for s in splits)


# ---------------------------------------------------------------------- API

def load_data(only_digits: bool = True, cache_dir: str | os.PathLike | None = None,
              download: bool = False, format: str = "sqlite", *,
              opener: Callable | None = None) -> tuple[ClientData, ClientData]:
  """Loads federated EMNIST, one client per writer (TFF's `emnist.load_data`).

  Each client's dataset has examples `{"label": int32 scalar, "pixels":
  float32[28, 28]}`. Pixels are in [0, 1] with 1.0 the background and 0.0
  the ink (the inverse of MNIST's usual convention). Labels 0-9 are digits,
  10-35 upper-case letters ('A'-'Z'), 36-61 lower-case ('a'-'z'). Every
  writer has examples in both train and test (TFF split each writer's
  examples; writers with fewer than 2 were dropped):

  * `only_digits=True`: 3,383 clients; train 341,873, test 40,832 examples.
  * `only_digits=False`: 3,400 clients; train 671,585, test 77,483 examples.

  Client ids are sorted, and a client's examples come in the file's order.
  Datasets are read from the cache on demand, one client at a time.

  Args:
    only_digits: only the digit classes (10 labels); otherwise digits and
      letters (62 labels).
    cache_dir: the cache folder (default `$FEDJIT_DATA_DIR`, or
      `~/.cache/fedjit/datasets`).
    download: download the file when it is not cached (see the module
      docstring for URLs and sizes). Without it, a missing file raises
      FileNotFoundError that says how to get it.
    format: "sqlite" (TFF's current files; one download for both tasks) or
      "hdf5" (TFF's older files, one archive per task; needs h5py).
    opener: a `urllib.request.urlopen`-like function used to download (for
      tests or proxies); default `urlopen`.

  Returns:
    `(train, test)`, two `ClientData` with the same client ids.

  Raises:
    FileNotFoundError: the file is not cached and `download` is False.
    DownloadError: the download failed or its checksum did not match.
    DatasetFormatError: a cached file is corrupt or has another layout.

  Example:
    >>> train, test = load_data(only_digits=True, download=True)
    >>> ds = train.create_dataset_for_client("f0000_14")
    >>> ds.element_spec
    StructType('<label=int32,pixels=float32[28,28]>')
  """
  if format == "sqlite":
    return _load_sqlite(only_digits, cache_dir, download, opener)
  if format == "hdf5":
    return _load_hdf5(only_digits, cache_dir, download, opener)
  raise ValueError(f"format must be 'sqlite' (TFF's current files) or 'hdf5' (TFF's older "
                   f"files), got {format!r}.")
