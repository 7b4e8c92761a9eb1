"""MNIST handwritten digits, read from IDX files and split across clients.

Source: Yann LeCun, Corinna Cortes and Christopher J. C. Burges,
http://yann.lecun.com/exdb/mnist/. With `download=True` the four files come
from the mirror TensorFlow uses, https://storage.googleapis.com/cvdf-datasets/mnist/,
checked against pinned SHA-256 sums.

License: Creative Commons Attribution-Share Alike 3.0 (CC BY-SA 3.0), as the
dataset is commonly redistributed (e.g. by TensorFlow Datasets); the original
site states no license.

Size: 70,000 grayscale 28x28 images of the digits 0-9 (60,000 train, 10,000
test); four gzipped IDX files of 11.6 MB (55 MB unpacked).

The IDX format (the original site's): a 4-byte big-endian magic number
`0x00 0x00 <dtype code> <number of dimensions>`, one big-endian uint32 per
dimension, then the data in C order, big-endian. Files may be gzipped.
`read_idx` reads any IDX file; `load_arrays` reads the four MNIST files;
`load_data` splits them into a federated dataset.

Example:
  >>> train, test = fedjit.simulation.datasets.mnist.load_data(
  ...     "~/data/mnist", num_clients=100, partition="dirichlet", alpha=0.5)
  >>> str(train.element_type_structure)
  '<label=int32,pixels=float32[28,28]>'
"""

from __future__ import annotations

import gzip
import os
import pathlib
import urllib.request
import zlib
from typing import Callable, Literal, Sequence

import numpy as np

from fedjit.simulation import partitioners
from fedjit.simulation._client_data import ClientData
from fedjit.simulation._dataset import Dataset
from fedjit.simulation.datasets import _download
from fedjit.simulation.datasets._download import Source

__all__ = ["IdxFormatError", "SOURCES", "load_arrays", "load_data", "read_idx"]

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# IDX dtype codes (third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The four files, by role, named without ".gz".
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"

SOURCES = {
    "train_images": Source(
        "train-images-idx3-ubyte.gz", _MIRROR + "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "MNIST training images", 9_912_422),
    "train_labels": Source(
        "train-labels-idx1-ubyte.gz", _MIRROR + "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "MNIST training labels", 28_881),
    "test_images": Source(
        "t10k-images-idx3-ubyte.gz", _MIRROR + "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "MNIST test images", 1_648_877),
    "test_labels": Source(
        "t10k-labels-idx1-ubyte.gz", _MIRROR + "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "MNIST test labels", 4_542),
}


class IdxFormatError(ValueError):
  """A file that is not a well-formed IDX file (bad magic number, unknown
  dtype code, truncated header or data, trailing bytes, broken gzip)."""


# ------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file (optionally gzipped) into a NumPy array.

  The header is a magic number `0x0000TTNN` (TT the dtype code: 0x08 uint8,
  0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64; NN the
  number of dimensions), then NN big-endian uint32 sizes, then the data,
  big-endian, in C order. Gzip is recognized by its content, not the name.

  Args:
    path: the file.

  Returns:
    An array of the file's shape, in native byte order.

  Raises:
    IdxFormatError: (a ValueError) naming the file, if the magic number is
      wrong, the dtype code unknown, the file shorter than its header
      promises, longer than it, or the gzip stream broken.
    FileNotFoundError: if there is no such file.

  Example:
    >>> read_idx("mnist/t10k-labels-idx1-ubyte.gz")[:5]
    array([7, 2, 1, 0, 4], dtype=uint8)
  """
  path = pathlib.Path(path)
  raw = path.read_bytes()
  if raw[:2] == b"\x1f\x8b":
    try:
      raw = gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
      raise IdxFormatError(f"{path}: the gzip stream is broken or truncated "
                           f"({type(e).__name__}: {e}). Download the file again.") from None
  if len(raw) < 4:
    raise IdxFormatError(f"{path}: truncated IDX file: {len(raw)} bytes, shorter than the "
                         f"4-byte magic number.")
  magic = int.from_bytes(raw[:4], "big")
  code, ndim = raw[2], raw[3]
  if raw[:2] != b"\x00\x00" or code not in _IDX_DTYPES:
    raise IdxFormatError(
        f"{path}: bad IDX magic number 0x{magic:08X}. An IDX file starts with two zero "
        f"bytes, a dtype code ({', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}) and the "
        f"number of dimensions, e.g. 0x00000803 for uint8 images. Is this an IDX file?")
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise IdxFormatError(f"{path}: truncated IDX header: the magic number 0x{magic:08X} "
                         f"announces {ndim} dimensions ({header} header bytes), but the file "
                         f"has {len(raw)} bytes.")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  dtype = _IDX_DTYPES[code]
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  found = len(raw) - header
  if found < expected:
    raise IdxFormatError(f"{path}: truncated IDX data: shape {shape} of {dtype.newbyteorder('=')} "
                         f"needs {expected} bytes after the header, but only {found} are "
                         f"there. Download the file again.")
  if found > expected:
    raise IdxFormatError(f"{path}: {found - expected} unexpected bytes after the IDX data of "
                         f"shape {shape} ({expected} bytes); the header does not match the "
                         f"file.")
  data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
  return data.reshape(shape).astype(dtype.newbyteorder("="))


def _candidates(name: str) -> list[str]:
  dotted = name.replace("-idx", ".idx", 1)  # e.g. train-images.idx3-ubyte
  return [name + ".gz", name, dotted + ".gz", dotted]


def _find(directory: pathlib.Path, name: str) -> pathlib.Path | None:
  for candidate in _candidates(name):
    if (directory / candidate).is_file():
      return directory / candidate
  return None


def _locate(folders: Sequence[pathlib.Path]) -> dict[str, pathlib.Path] | None:
  """The four files from the first folder that holds them all."""
  for folder in folders:
    found = {role: _find(folder, name) for role, name in _FILES.items()}
    if all(found.values()):
      return found
  return None


def _read_split(images_path: pathlib.Path, labels_path: pathlib.Path
                ) -> tuple[np.ndarray, np.ndarray]:
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or images.dtype != np.uint8:
    raise IdxFormatError(f"{images_path}: expected uint8 images of shape [N, rows, cols], "
                         f"got {images.dtype} of shape {images.shape}.")
  if labels.ndim != 1:
    raise IdxFormatError(f"{labels_path}: expected a 1-D array of labels, got shape "
                         f"{labels.shape}.")
  if len(images) != len(labels):
    raise IdxFormatError(f"{images_path} has {len(images)} images but {labels_path} has "
                         f"{len(labels)} labels.")
  return images, labels


def _load_arrays(name: str, path, search: Sequence[pathlib.Path], sources: dict[str, Source],
                 download: bool, cache_dir, opener: Callable | None = None) -> Arrays:
  """Finds (or downloads) and reads the four files of an MNIST-like dataset."""
  if path is not None:
    base = pathlib.Path(path).expanduser()
    folders = [base, base / name]
  else:
    base = _download.cache_dir(cache_dir)
    folders = [base / name, *search]
  found = _locate(folders)
  if found is None and download:
    found = {role: _download.fetch(src, base / name, download=True,
                                   opener=opener or urllib.request.urlopen)
             for role, src in sources.items()}
  if found is None:
    looked = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(
        f"{name}: no folder holds all four IDX files "
        f"({', '.join(n + '[.gz]' for n in _FILES.values())}); looked in {looked}. Pass "
        f"path='folder/with/the/files', or download=True to fetch them "
        f"({sum(s.size or 0 for s in sources.values()) / 1e6:.1f} MB) into {base / name}.")
  train = _read_split(found["train_images"], found["train_labels"])
  test = _read_split(found["test_images"], found["test_labels"])
  return train, test


def load_arrays(path: str | os.PathLike | None = None, download: bool = False,
                cache_dir: str | os.PathLike | None = None,
                opener: Callable | None = None) -> Arrays:
  """The centralized MNIST arrays, `((x_train, y_train), (x_test, y_test))`.

  Images are uint8 `[N, 28, 28]`, labels uint8 `[N]`, as in the files.

  Args:
    path: a folder holding the four IDX files (gzipped or not; also named
      `train-images.idx3-ubyte`), or a folder with an `mnist/` folder of
      them. None looks in the cache folder's `mnist/`.
    download: download the files when they are not found, into `path/mnist/`
      (or the cache folder's `mnist/`), checking their SHA-256.
    cache_dir: the cache folder (default `$FEDJIT_DATA_DIR` or
      `~/.cache/fedjit/datasets`).
    opener: a `urllib.request.urlopen`-like function used to download (for
      tests and proxies).

  Returns:
    The training and test images and labels.

  Raises:
    FileNotFoundError: if the files are not found (the message says where
      it looked and how to get them).
    IdxFormatError: if a file is not well-formed IDX.
    DownloadError: a download failed or did not match its SHA-256.

  Example:
    >>> (x, y), (x_test, y_test) = load_arrays("~/data/mnist")
    >>> x.shape, y_test.shape
    ((60000, 28, 28), (10000,))
  """
  return _load_arrays("mnist", path, [], SOURCES, download, cache_dir, opener)


# ------------------------------------------------------------- federating


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
  """Integer sizes summing to `total`, each within one of `total * w / sum(w)`."""
  quotas = total * weights / weights.sum()
  sizes = np.floor(quotas).astype(np.int64)
  short = total - int(sizes.sum())
  order = np.lexsort((np.arange(len(weights)), -(quotas - sizes)))
  sizes[order[:short]] += 1
  return sizes


def _matching_partition(train_labels: np.ndarray, train_parts: Sequence[np.ndarray],
                       test_labels: np.ndarray, seed: int | None = None) -> list[np.ndarray]:
  """Partitions a test split so each client's test labels follow its
  training labels.

  For every class c, the test examples of c (in random order) are dealt to
  the clients in proportion to n_kc, client k's training examples of class c
  (largest-remainder rounding; evenly if no client has c in training).

  Args:
    train_labels: labels of the training split.
    train_parts: the training partition, one index array per client.
    test_labels: labels of the test split.
    seed: seed for `np.random.default_rng`.

  Returns:
    One sorted int64 index array into the test split per client, disjoint
    and covering it. A small client may get no test example.

  Example:
    >>> test_parts = _matching_partition(y_train, parts, y_test, seed=0)
  """
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  classes = np.unique(np.concatenate([train_labels, test_labels]))
  counts = np.stack([np.bincount(np.searchsorted(classes, train_labels[np.asarray(p)]),
                                 minlength=len(classes)) for p in train_parts])
  rng = np.random.default_rng(seed)
  out: list[list[np.ndarray]] = [[] for _ in train_parts]
  for c, label in enumerate(classes):
    members = rng.permutation(np.flatnonzero(test_labels == label))
    weights = counts[:, c].astype(np.float64)
    if weights.sum() == 0:
      weights = np.ones(len(train_parts))
    sizes = _largest_remainder(weights, len(members))
    for k, chunk in enumerate(np.split(members, np.cumsum(sizes)[:-1])):
      out[k].append(chunk)
  return [np.sort(np.concatenate(p)).astype(np.int64) for p in out]


def _image_client_data(images: np.ndarray, labels: np.ndarray,
                       parts: Sequence[np.ndarray]) -> ClientData:
  """ClientData whose client `str(k)` holds `parts[k]`, made on demand from
  the uint8 arrays (so only one copy of the data is kept)."""

  def make(cid: str) -> Dataset:
    idx = parts[int(cid)]
    return Dataset.from_tensor_slices({
        "pixels": images[idx].astype(np.float32) / np.float32(255.0),
        "label": labels[idx].astype(np.int32)})

  return ClientData.from_clients_and_fn([str(k) for k in range(len(parts))], make)


def _federate(arrays: Arrays, num_clients: int, partition: str, alpha: float,
             min_partition_size: int, seed: int | None) -> tuple[ClientData, ClientData]:
  """Splits centralized image arrays into (train, test) ClientData.

  The training split is partitioned with `partitioners.iid` or
  `partitioners.dirichlet`; the test split with `_matching_partition`, so a
  client's test labels follow its training labels.
  """
  (x, y), (x_test, y_test) = arrays
  if partition == "iid":
    parts = partitioners.iid(len(y), num_clients, seed=seed)
  elif partition == "dirichlet":
    parts = partitioners.dirichlet(y, num_clients, alpha=alpha,
                                   min_partition_size=min_partition_size, seed=seed)
  else:
    raise ValueError(f"partition must be 'iid' or 'dirichlet', got {partition!r}. For other "
                     f"splits use load_arrays(...) with fedjit.simulation.partitioners and "
                     f"ClientData.from_partition.")
  test_seed = None if seed is None else [seed, 1]
  test_parts = _matching_partition(y, parts, y_test, seed=test_seed)
  return _image_client_data(x, y, parts), _image_client_data(x_test, y_test, test_parts)


def load_data(path: str | os.PathLike | None = None, num_clients: int = 100,
              partition: Literal["iid", "dirichlet"] = "dirichlet", alpha: float = 0.5,
              seed: int | None = 0, min_partition_size: int = 10, download: bool = False,
              cache_dir: str | os.PathLike | None = None,
              opener: Callable | None = None) -> tuple[ClientData, ClientData]:
  """MNIST split across `num_clients` clients, as (train, test) ClientData.

  Examples are `{"pixels": float32[28, 28] in [0, 1], "label": int32}`;
  client ids are "0" ... str(num_clients - 1), the same in train and test.
  The 60,000 training images are partitioned IID (equal random shares) or
  by Dirichlet label skew (per class, shares p ~ Dir(alpha); smaller alpha
  is more skewed); the 10,000 test images are dealt class by class in
  proportion to each client's training examples of that class, so a client's
  test set follows its training label distribution.

  Args:
    path: a folder with the four IDX files (see `load_arrays`); None looks
      in the cache folder.
    num_clients: the number of clients.
    partition: "iid" or "dirichlet".
    alpha: the Dirichlet concentration (ignored for "iid").
    seed: seed of the split (None: a fresh random one).
    min_partition_size: least training examples per client ("dirichlet").
    download: download the files (11.6 MB) when they are not found.
    cache_dir: the cache folder.
    opener: a `urllib.request.urlopen`-like function used to download.

  Returns:
    `(train, test)` ClientData.

  Raises:
    FileNotFoundError: the files are not there (the message says how to get them).
    IdxFormatError: a file is not well-formed IDX.
    DownloadError: a download failed or did not match its SHA-256.
    ValueError: a bad `partition`, `num_clients` or `alpha`.

  Example:
    >>> train, test = load_data("~/data/mnist", num_clients=10, partition="iid")
    >>> len(train.create_dataset_for_client("0"))
    6000
  """
  arrays = load_arrays(path, download=download, cache_dir=cache_dir, opener=opener)
  return _federate(arrays, num_clients, partition, alpha, min_partition_size, seed)
