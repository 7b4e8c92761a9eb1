"""Tests for `fedjit.simulation.datasets.emnist` on small files built here in
TFF's exact layouts (an LZMA-compressed SQLite database of serialized
`tf.train.Example`s; HDF5 files in a tar.bz2), loaded through the same path
as a real download, with a local opener and a temporary cache."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import lzma
import sqlite3
import struct
import tarfile
import zlib

import numpy as np
import pytest

from fedjit.simulation.datasets import emnist
from fedjit.simulation.datasets._download import DownloadError

URL = "https://storage.googleapis.com/tff-datasets-public/"

# --------------------------------------------- an independent protobuf encoder


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # negative int64s are ten-byte two's complement
  out = bytearray()
  while True:
    low, n = n & 0x7F, n >> 7
    out.append(low | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _tag(field: int, wire: int) -> bytes:
  return _varint(field << 3 | wire)


def _delimited(field: int, payload: bytes) -> bytes:
  return _tag(field, 2) + _varint(len(payload)) + payload


def _float_list(values, packed: bool = True) -> bytes:
  values = [float(v) for v in values]
  if packed:
    return _delimited(1, struct.pack(f"<{len(values)}f", *values))
  return b"".join(_tag(1, 5) + struct.pack("<f", v) for v in values)


def _int64_list(values, packed: bool = True) -> bytes:
  if packed:
    return _delimited(1, b"".join(_varint(v) for v in values))
  return b"".join(_tag(1, 0) + _varint(v) for v in values)


def _bytes_list(values) -> bytes:
  return b"".join(_delimited(1, v) for v in values)


def _feature(kind: str, payload: bytes) -> bytes:
  return _delimited({"bytes": 1, "float": 2, "int64": 3}[kind], payload)


def _example(features: dict[str, bytes]) -> bytes:
  """A tf.train.Example from `{name: encoded Feature}`."""
  entries = b"".join(_delimited(1, _delimited(1, k.encode()) + _delimited(2, v))
                     for k, v in features.items())
  return _delimited(1, entries)


def _emnist_example(label: int, pixels: np.ndarray, packed: bool = True) -> bytes:
  return _example({"pixels": _feature("float", _float_list(pixels.ravel(), packed)),
                   "label": _feature("int64", _int64_list([label], packed))})


# ------------------------------------------------------------- the fake data

# Labels per writer and split; "all" adds letters (10-61) and a writer who wrote
# only letters, as the real "all" task has more writers than "digits_only".
SPLITS = {
    "digits_only_train": {"f0000_14": [3, 1, 4], "f0001_41": [5, 9], "f0002_03": [2]},
    "digits_only_test": {"f0000_14": [6], "f0001_41": [5], "f0002_03": [3]},
    "all_train": {"f0000_14": [3, 1, 4, 37], "f0001_41": [5, 9, 11], "f0002_03": [2],
                  "f0003_22": [61, 10]},
    "all_test": {"f0000_14": [6, 36], "f0001_41": [5], "f0002_03": [3], "f0003_22": [35]},
}


def _pixels(split: str, client: str, i: int) -> np.ndarray:
  """A 28x28 image: background 1.0, some ink at levels k/255."""
  rng = np.random.default_rng(zlib.crc32(f"{split}/{client}/{i}".encode()))
  p = np.ones((28, 28), np.float32)
  p[rng.integers(0, 28, 60), rng.integers(0, 28, 60)] = rng.integers(0, 255, 60) / 255
  return p


def _expected(split: str, client: str) -> tuple[np.ndarray, np.ndarray]:
  labels = SPLITS[split][client]
  return (np.array(labels, np.int32),
          np.stack([_pixels(split, client, i) for i in range(len(labels))]))


def _build_db(path, index: bool = True, splits=SPLITS) -> None:
  con = sqlite3.connect(path)
  con.execute("CREATE TABLE examples (split_name TEXT NOT NULL, client_id TEXT NOT NULL, "
              "serialized_example_proto BLOB NOT NULL)")
  con.execute("CREATE TABLE client_metadata (client_id TEXT NOT NULL, split_name TEXT NOT "
              "NULL, num_examples INTEGER NOT NULL)")
  rows = [(split, cid, i, label) for split, clients in splits.items()
          for cid, labels in clients.items() for i, label in enumerate(labels)]
  # Interleave clients and splits, so a client's rows are not contiguous.
  rows.sort(key=lambda r: (r[2], r[1], r[0]))
  for split, cid, i, label in rows:
    con.execute("INSERT INTO examples VALUES (?, ?, ?)",
                (split, cid, _emnist_example(label, _pixels(split, cid, i))))
  for split, clients in splits.items():
    for cid, labels in clients.items():
      con.execute("INSERT INTO client_metadata VALUES (?, ?, ?)", (cid, split, len(labels)))
  if index:
    con.execute("CREATE INDEX examples_client ON examples (client_id, split_name)")
  con.commit()
  con.close()


def _sqlite_lzma(tmp_path, index: bool = True) -> bytes:
  db = tmp_path / "build.sqlite"
  _build_db(db, index)
  data = lzma.compress(db.read_bytes(), format=lzma.FORMAT_ALONE, preset=1)
  db.unlink()
  return data


class _Response(io.BytesIO):
  def __init__(self, data: bytes):
    super().__init__(data)
    self.headers = {"Content-Length": str(len(data))}


class _Opener:
  """A local `urlopen`: serves `files` by URL and records the calls."""

  def __init__(self, files: dict[str, bytes]):
    self.files, self.calls = files, []

  def __call__(self, url):
    self.calls.append(url)
    return _Response(self.files[url])


def _no_network(url):
  raise AssertionError(f"unexpected download of {url}")


def _pin(monkeypatch, name: str, data: bytes) -> None:
  """Points the module's Source `name` at the checksum of our fake file."""
  source = dataclasses.replace(getattr(emnist, name), sha256=hashlib.sha256(data).hexdigest())
  monkeypatch.setattr(emnist, name, source)


def _files(folder) -> set[str]:
  return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _check_split(data, split: str) -> None:
  assert data.client_ids == sorted(SPLITS[split])
  for cid in data.client_ids:
    ds = data.create_dataset_for_client(cid)
    assert str(ds.element_spec) == "<label=int32,pixels=float32[28,28]>"
    labels, pixels = _expected(split, cid)
    got = ds.numpy()
    assert len(ds) == len(labels)
    assert got["label"].dtype == np.int32 and got["label"].shape == (len(labels),)
    assert got["pixels"].dtype == np.float32 and got["pixels"].shape == (len(labels), 28, 28)
    np.testing.assert_array_equal(got["label"], labels)
    np.testing.assert_array_equal(got["pixels"], pixels)


# ------------------------------------------------------------------ sources


def test_sources_are_tffs_urls_and_checksums():
  assert emnist.EMNIST_SQLITE.url == URL + "emnist_all.sqlite.lzma"
  assert emnist.EMNIST_SQLITE.filename == "emnist_all.sqlite.lzma"
  assert emnist.EMNIST_SQLITE.sha256 == emnist.EMNIST_SQLITE_SHA256
  assert emnist.FED_EMNIST_DIGITSONLY_HDF5.url == URL + "fed_emnist_digitsonly.tar.bz2"
  assert emnist.FED_EMNIST_DIGITSONLY_HDF5.sha256 == (
      "55333deb8546765427c385710ca5e7301e16f4ed8b60c1dc5ae224b42bd5b14b")
  assert emnist.FED_EMNIST_HDF5.url == URL + "fed_emnist.tar.bz2"
  assert emnist.FED_EMNIST_HDF5.sha256 == (
      "fe1ed5a502cea3a952eb105920bff8cffb32836b5173cb18a57a32c3606f3ea0")


# ----------------------------------------------------------------- decoding


def test_decoder_on_hand_encoded_examples():
  # Worked out by hand from example.proto / feature.proto:
  # Example{features(1): Features{feature(1): {key(1): "label",
  #   value(2): Feature{int64_list(3): Int64List{value(1): packed [7]}}}}}
  label = bytes.fromhex("0a10" "0a0e" "0a05" "6c6162656c" "1205" "1a03" "0a0107")
  assert list(emnist._parse_tf_example(label)) == ["label"]
  np.testing.assert_array_equal(emnist._parse_tf_example(label)["label"], [7])
  # float_list(2) with packed little-endian float32 [1.0, 0.5].
  pixels = bytes.fromhex("0a18" "0a16" "0a06" "706978656c73" "120c" "120a" "0a08"
                         "0000803f" "0000003f")
  got = emnist._parse_tf_example(pixels)["pixels"]
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, [1.0, 0.5])


def test_decoder_reads_every_encoding():
  unknown = _tag(9, 0) + _varint(300) + _tag(10, 1) + b"\x00" * 8 + _tag(11, 5) + b"\x01" * 4
  features = {
      "packed": _feature("float", _float_list([0.25, -2.0])),
      "unpacked": _feature("float", _float_list([1.5, 3.0], packed=False)),
      "chunks": _feature("float", _float_list([1.0]) + _float_list([2.0], packed=False)),
      "ints": _feature("int64", _int64_list([0, 1, 300, -1, 2**63 - 1, -2**63])),
      "ints_unpacked": _feature("int64", _int64_list([5, -7], packed=False) + unknown),
      "bytes": _feature("bytes", _bytes_list([b"", b"ab\x00c"])),
      "oneof": _feature("int64", _int64_list([1])) + _feature("float", _float_list([4.0])),
      "empty": b"",
  }
  data = _example(features) + unknown
  got = emnist._parse_tf_example(data)
  np.testing.assert_array_equal(got["packed"], np.array([0.25, -2.0], np.float32))
  np.testing.assert_array_equal(got["unpacked"], np.array([1.5, 3.0], np.float32))
  np.testing.assert_array_equal(got["chunks"], np.array([1.0, 2.0], np.float32))
  assert got["ints"].dtype == np.int64
  assert got["ints"].tolist() == [0, 1, 300, -1, 2**63 - 1, -2**63]
  assert got["ints_unpacked"].tolist() == [5, -7]
  assert got["bytes"] == [b"", b"ab\x00c"]
  np.testing.assert_array_equal(got["oneof"], np.array([4.0], np.float32))  # last kind wins
  assert got["empty"] is None
  # A message repeated on the wire is merged, as protobuf parsers do.
  merged = emnist._parse_tf_example(_example({"a": _feature("bytes", _bytes_list([b"x"]))})
                                    + _example({"b": _feature("int64", _int64_list([2]))}))
  assert merged["a"] == [b"x"] and merged["b"].tolist() == [2]


@pytest.mark.parametrize("data", [
    _emnist_example(3, np.ones((28, 28)))[:-5],  # truncated
    b"\x0a\x05\x0b\x00",  # group wire type 3 inside Features
    b"\x08" + b"\xff" * 11,  # a varint longer than 10 bytes
    _example({"x": _feature("float", _delimited(1, b"\x00" * 3))}),  # 3-byte packed floats
])
def test_decoder_rejects_malformed_bytes(data):
  with pytest.raises(ValueError):
    emnist._parse_tf_example(data)


# ------------------------------------------------------------------- SQLite


@pytest.mark.parametrize("index", [True, False], ids=["indexed", "unindexed"])
def test_sqlite_download_and_load_digits(tmp_path, monkeypatch, index):
  data = _sqlite_lzma(tmp_path, index)
  _pin(monkeypatch, "EMNIST_SQLITE", data)
  opener = _Opener({URL + "emnist_all.sqlite.lzma": data})
  cache = tmp_path / "cache"
  train, test = emnist.load_data(cache_dir=cache, download=True, opener=opener)
  assert opener.calls == [URL + "emnist_all.sqlite.lzma"]
  assert _files(cache) == {"emnist_all.sqlite.lzma", "emnist_all.sqlite"}
  _check_split(train, "digits_only_train")
  _check_split(test, "digits_only_test")
  assert len(train.create_dataset_from_all_clients()) == 6
  assert len(test.create_dataset_from_all_clients()) == 3
  # A second load reads the cache and downloads nothing.
  train2, _ = emnist.load_data(cache_dir=cache, opener=_no_network)
  np.testing.assert_array_equal(train2.create_dataset_for_client("f0001_41").numpy()["pixels"],
                                _expected("digits_only_train", "f0001_41")[1])


def test_sqlite_all_characters(tmp_path, monkeypatch):
  data = _sqlite_lzma(tmp_path)
  _pin(monkeypatch, "EMNIST_SQLITE", data)
  opener = _Opener({URL + "emnist_all.sqlite.lzma": data})
  train, test = emnist.load_data(only_digits=False, cache_dir=tmp_path, download=True,
                                 opener=opener)
  _check_split(train, "all_train")
  _check_split(test, "all_test")
  assert len(train) == 4 and "f0003_22" in train
  labels = train.create_dataset_from_all_clients().numpy()["label"]
  assert sorted(labels.tolist()) == [1, 2, 3, 4, 5, 9, 10, 11, 37, 61]
  assert len(test.create_dataset_from_all_clients()) == 5
  # Both tasks come from the one database: digits-only needs no second download.
  train_digits, _ = emnist.load_data(only_digits=True, cache_dir=tmp_path, opener=_no_network)
  assert train_digits.client_ids == ["f0000_14", "f0001_41", "f0002_03"]


def test_sqlite_decompressed_database_placed_by_hand(tmp_path):
  # A client with more examples than fit in one `rowid IN (...)` query.
  splits = {"digits_only_train": {"w1": [i % 10 for i in range(1203)], "w0": [4]},
            "digits_only_test": {"w1": [0], "w0": [1]}}
  _build_db(tmp_path / "emnist_all.sqlite", index=False, splits=splits)
  train, test = emnist.load_data(cache_dir=tmp_path, opener=_no_network)
  assert train.client_ids == ["w0", "w1"]
  w1 = train.create_dataset_for_client("w1").numpy()
  np.testing.assert_array_equal(w1["label"], np.arange(1203) % 10)
  np.testing.assert_array_equal(w1["pixels"][1202], _pixels("digits_only_train", "w1", 1202))
  assert test.create_dataset_for_client("w0").numpy()["label"].tolist() == [1]


def test_sqlite_checksum_mismatch_leaves_nothing(tmp_path):
  data = _sqlite_lzma(tmp_path)  # the real pinned checksum cannot match it
  cache = tmp_path / "cache"
  with pytest.raises(DownloadError) as e:
    emnist.load_data(cache_dir=cache, download=True,
                     opener=_Opener({URL + "emnist_all.sqlite.lzma": data}))
  assert "emnist_all.sqlite.lzma" in str(e.value)
  assert URL + "emnist_all.sqlite.lzma" in str(e.value)
  assert _files(cache) == set()  # no file, no .part


def test_sqlite_not_cached_without_download(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    emnist.load_data(cache_dir=tmp_path, opener=_no_network)
  message = str(e.value)
  assert "download=True" in message and URL + "emnist_all.sqlite.lzma" in message
  assert str(tmp_path / "emnist_all.sqlite") in message
  assert _files(tmp_path) == set()


def test_sqlite_truncated_lzma(tmp_path, monkeypatch):
  data = _sqlite_lzma(tmp_path)[:-200]
  _pin(monkeypatch, "EMNIST_SQLITE", data)
  with pytest.raises(emnist.DatasetFormatError) as e:
    emnist.load_data(cache_dir=tmp_path / "cache", download=True,
                     opener=_Opener({URL + "emnist_all.sqlite.lzma": data}))
  assert str(tmp_path / "cache" / "emnist_all.sqlite.lzma") in str(e.value)
  assert "Delete it" in str(e.value)
  assert _files(tmp_path / "cache") == {"emnist_all.sqlite.lzma"}  # no database, no .part


def test_sqlite_garbage_database(tmp_path):
  (tmp_path / "emnist_all.sqlite").write_bytes(b"this is not a database" * 100)
  with pytest.raises(emnist.DatasetFormatError, match="emnist_all.sqlite is corrupt"):
    emnist.load_data(cache_dir=tmp_path)


def test_sqlite_truncated_database(tmp_path):
  db = tmp_path / "emnist_all.sqlite"
  _build_db(db)
  db.write_bytes(db.read_bytes()[:4 * 4096])
  with pytest.raises(emnist.DatasetFormatError) as e:
    train, test = emnist.load_data(cache_dir=tmp_path)
    for data in (train, test):
      for cid in data.client_ids:
        data.create_dataset_for_client(cid)
  assert str(db) in str(e.value)


def test_sqlite_database_of_another_layout(tmp_path):
  con = sqlite3.connect(tmp_path / "emnist_all.sqlite")
  con.execute("CREATE TABLE examples (split_name TEXT, client_id TEXT, "
              "serialized_example_proto BLOB)")
  con.commit()
  con.close()
  with pytest.raises(emnist.DatasetFormatError, match="no table client_metadata"):
    emnist.load_data(cache_dir=tmp_path)


def test_sqlite_bad_example_names_client_and_file(tmp_path):
  db = tmp_path / "emnist_all.sqlite"
  _build_db(db)
  con = sqlite3.connect(db)
  bad = _example({"pixels": _feature("float", _float_list([0.5] * 10)),
                  "label": _feature("int64", _int64_list([1]))})
  con.execute("INSERT INTO examples VALUES ('digits_only_train', 'f0002_03', ?)", (bad,))
  con.commit()
  con.close()
  train, _ = emnist.load_data(cache_dir=tmp_path)
  assert len(train.create_dataset_for_client("f0000_14")) == 3
  with pytest.raises(emnist.DatasetFormatError) as e:
    train.create_dataset_for_client("f0002_03")
  assert "'f0002_03'" in str(e.value) and str(db) in str(e.value)
  assert "FloatList of 784 values, got a FloatList of 10" in str(e.value)


def test_unknown_format(tmp_path):
  with pytest.raises(ValueError, match="'sqlite'.*'hdf5'"):
    emnist.load_data(cache_dir=tmp_path, format="tfrecord")


# --------------------------------------------------------------------- HDF5


def _h5(tmp_path, split: str) -> bytes:
  h5py = pytest.importorskip("h5py")
  path = tmp_path / f"{split}.h5"
  with h5py.File(path, "w") as f:
    for cid in SPLITS[split]:
      labels, pixels = _expected(split, cid)
      f.create_dataset(f"examples/{cid}/label", data=labels)
      f.create_dataset(f"examples/{cid}/pixels", data=pixels)
  data = path.read_bytes()
  path.unlink()
  return data


def _tar_bz2(members: list[tuple[str, bytes | str]]) -> bytes:
  """A tar.bz2 of `(name, content)`; a str content makes a symlink to it."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
    for name, content in members:
      info = tarfile.TarInfo(name)
      if isinstance(content, str):
        info.type, info.linkname = tarfile.SYMTYPE, content
        tar.addfile(info)
      else:
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
  return buf.getvalue()


def _digits_archive(tmp_path) -> bytes:
  return _tar_bz2([("fed_emnist_digitsonly_train.h5", _h5(tmp_path, "digits_only_train")),
                   ("fed_emnist_digitsonly_test.h5", _h5(tmp_path, "digits_only_test"))])


def test_hdf5_download_and_load(tmp_path, monkeypatch):
  data = _digits_archive(tmp_path)
  _pin(monkeypatch, "FED_EMNIST_DIGITSONLY_HDF5", data)
  opener = _Opener({URL + "fed_emnist_digitsonly.tar.bz2": data})
  cache = tmp_path / "cache"
  train, test = emnist.load_data(cache_dir=cache, download=True, format="hdf5", opener=opener)
  assert opener.calls == [URL + "fed_emnist_digitsonly.tar.bz2"]
  assert _files(cache) == {"fed_emnist_digitsonly.tar.bz2", "fed_emnist_digitsonly_train.h5",
                           "fed_emnist_digitsonly_test.h5"}
  _check_split(train, "digits_only_train")
  _check_split(test, "digits_only_test")
  train2, _ = emnist.load_data(cache_dir=cache, format="hdf5", opener=_no_network)
  assert train2.client_ids == train.client_ids


def test_hdf5_all_characters_and_unsafe_members(tmp_path, monkeypatch):
  # Members in a folder, plus entries that must never be written: a path that
  # climbs out of the cache, an absolute path, and a symlink with a wanted name.
  data = _tar_bz2([
      ("../escaped.h5", b"x"),
      ("/tmp/absolute_fedjit_test.h5", b"x"),
      ("datasets/fed_emnist_train.h5", "/etc/passwd"),
      ("datasets/fed_emnist_train.h5", _h5(tmp_path, "all_train")),
      ("./datasets/fed_emnist_test.h5", _h5(tmp_path, "all_test")),
  ])
  _pin(monkeypatch, "FED_EMNIST_HDF5", data)
  cache = tmp_path / "cache"
  train, test = emnist.load_data(only_digits=False, cache_dir=cache, download=True,
                                 format="hdf5",
                                 opener=_Opener({URL + "fed_emnist.tar.bz2": data}))
  _check_split(train, "all_train")
  _check_split(test, "all_test")
  assert _files(cache) == {"fed_emnist.tar.bz2", "fed_emnist_train.h5", "fed_emnist_test.h5"}
  assert not (cache / "fed_emnist_train.h5").is_symlink()
  assert not (tmp_path / "escaped.h5").exists()
  assert not (cache / "datasets").exists()


def test_hdf5_and_sqlite_agree(tmp_path, monkeypatch):
  archive = _digits_archive(tmp_path)
  _pin(monkeypatch, "FED_EMNIST_DIGITSONLY_HDF5", archive)
  _build_db(tmp_path / "emnist_all.sqlite")
  h5_train, _ = emnist.load_data(cache_dir=tmp_path, download=True, format="hdf5",
                                 opener=_Opener({URL + "fed_emnist_digitsonly.tar.bz2": archive}))
  sql_train, _ = emnist.load_data(cache_dir=tmp_path, format="sqlite")
  assert h5_train.client_ids == sql_train.client_ids
  assert h5_train.element_type_structure == sql_train.element_type_structure
  a = h5_train.create_dataset_from_all_clients().numpy()
  b = sql_train.create_dataset_from_all_clients().numpy()
  np.testing.assert_array_equal(a["label"], b["label"])
  np.testing.assert_array_equal(a["pixels"], b["pixels"])


def test_hdf5_checksum_mismatch_leaves_nothing(tmp_path):
  data = _digits_archive(tmp_path)
  cache = tmp_path / "cache"
  with pytest.raises(DownloadError) as e:
    emnist.load_data(cache_dir=cache, download=True, format="hdf5",
                     opener=_Opener({URL + "fed_emnist_digitsonly.tar.bz2": data}))
  assert "fed_emnist_digitsonly.tar.bz2" in str(e.value)
  assert URL + "fed_emnist_digitsonly.tar.bz2" in str(e.value)
  assert _files(cache) == set()


def test_hdf5_not_cached_without_download(tmp_path):
  pytest.importorskip("h5py")
  with pytest.raises(FileNotFoundError) as e:
    emnist.load_data(only_digits=False, cache_dir=tmp_path, format="hdf5", opener=_no_network)
  assert "download=True" in str(e.value) and URL + "fed_emnist.tar.bz2" in str(e.value)


def test_hdf5_truncated_archive(tmp_path, monkeypatch):
  data = _digits_archive(tmp_path)
  data = data[:len(data) // 2]
  _pin(monkeypatch, "FED_EMNIST_DIGITSONLY_HDF5", data)
  cache = tmp_path / "cache"
  with pytest.raises(emnist.DatasetFormatError) as e:
    emnist.load_data(cache_dir=cache, download=True, format="hdf5",
                     opener=_Opener({URL + "fed_emnist_digitsonly.tar.bz2": data}))
  assert str(cache / "fed_emnist_digitsonly.tar.bz2") in str(e.value)
  assert not any(n.endswith(".part") or n.endswith("_test.h5") for n in _files(cache))


def test_hdf5_archive_missing_a_file(tmp_path, monkeypatch):
  data = _tar_bz2([("fed_emnist_digitsonly_train.h5", _h5(tmp_path, "digits_only_train")),
                   ("README", b"hello")])
  _pin(monkeypatch, "FED_EMNIST_DIGITSONLY_HDF5", data)
  with pytest.raises(emnist.DatasetFormatError) as e:
    emnist.load_data(cache_dir=tmp_path, download=True, format="hdf5",
                     opener=_Opener({URL + "fed_emnist_digitsonly.tar.bz2": data}))
  assert "does not contain fed_emnist_digitsonly_test.h5" in str(e.value)
  assert str(tmp_path / "fed_emnist_digitsonly.tar.bz2") in str(e.value)


def test_hdf5_corrupt_file(tmp_path):
  pytest.importorskip("h5py")
  (tmp_path / "fed_emnist_digitsonly_train.h5").write_bytes(b"\x89HDF garbage" * 50)
  (tmp_path / "fed_emnist_digitsonly_test.h5").write_bytes(_h5(tmp_path, "digits_only_test"))
  with pytest.raises(emnist.DatasetFormatError) as e:
    emnist.load_data(cache_dir=tmp_path, format="hdf5")
  assert str(tmp_path / "fed_emnist_digitsonly_train.h5") in str(e.value)
