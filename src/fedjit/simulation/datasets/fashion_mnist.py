"""Fashion-MNIST (Zalando article images), read from IDX files and split
across clients.

Source: Han Xiao, Kashif Rasul and Roland Vollgraf, "Fashion-MNIST: a Novel
Image Dataset for Benchmarking Machine Learning Algorithms" (2017),
https://github.com/zalandoresearch/fashion-mnist. The files are found in
`path`, in the cache folder's `fashion_mnist/`, or where Debian's package
`dataset-fashion-mnist` installs them (`/usr/share/datasets/fashion-mnist`,
`apt install dataset-fashion-mnist`); with `download=True` they come from
the project's GitHub repository, checked against pinned SHA-256 sums.

License: MIT (Copyright 2017 Zalando SE).

Size: 70,000 grayscale 28x28 images in 10 classes (60,000 train, 10,000
test); four gzipped IDX files of 30.9 MB (55 MB unpacked). Labels: 0
T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
7 Sneaker, 8 Bag, 9 Ankle boot (`CLASS_NAMES`).

The file format and the federated split are MNIST's: see
`fedjit.simulation.datasets.mnist`.

Example:
  >>> train, test = fedjit.simulation.datasets.fashion_mnist.load_data(
  ...     num_clients=100, partition="dirichlet", alpha=0.3)
  >>> str(train.element_type_structure)
  '<label=int32,pixels=float32[28,28]>'
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, Literal

from fedjit.simulation._client_data import ClientData
from fedjit.simulation.datasets._download import Source
from fedjit.simulation.datasets.mnist import (Arrays, IdxFormatError, _federate, _load_arrays,
                                              read_idx)

__all__ = ["CLASS_NAMES", "DEBIAN_DIR", "IdxFormatError", "SOURCES", "load_arrays",
           "load_data", "read_idx"]

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

# Where Debian's `dataset-fashion-mnist` package puts the four .gz files.
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

_REPO = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"

SOURCES = {
    "train_images": Source(
        "train-images-idx3-ubyte.gz", _REPO + "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "Fashion-MNIST training images", 26_421_880),
    "train_labels": Source(
        "train-labels-idx1-ubyte.gz", _REPO + "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "Fashion-MNIST training labels", 29_515),
    "test_images": Source(
        "t10k-images-idx3-ubyte.gz", _REPO + "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "Fashion-MNIST test images", 4_422_102),
    "test_labels": Source(
        "t10k-labels-idx1-ubyte.gz", _REPO + "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        "Fashion-MNIST test labels", 5_148),
}


def load_arrays(path: str | os.PathLike | None = None, download: bool = False,
                cache_dir: str | os.PathLike | None = None,
                opener: Callable | None = None) -> Arrays:
  """The centralized Fashion-MNIST arrays, `((x_train, y_train), (x_test, y_test))`.

  Images are uint8 `[N, 28, 28]`, labels uint8 `[N]`, as in the files.

  Args:
    path: a folder holding the four IDX files (gzipped or not), or a folder
      with a `fashion_mnist/` folder of them. None looks in the cache
      folder's `fashion_mnist/`, then in `DEBIAN_DIR`.
    download: download the files when they are not found, into
      `path/fashion_mnist/` (or the cache folder's), checking their SHA-256.
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
    >>> (x, y), _ = load_arrays()  # e.g. after `apt install dataset-fashion-mnist`
    >>> CLASS_NAMES[y[0]]
    'Ankle boot'
  """
  return _load_arrays("fashion_mnist", path, [DEBIAN_DIR], SOURCES, download, cache_dir,
                      opener)


def load_data(path: str | os.PathLike | None = None, num_clients: int = 100,
              partition: Literal["iid", "dirichlet"] = "dirichlet", alpha: float = 0.5,
              seed: int | None = 0, min_partition_size: int = 10, download: bool = False,
              cache_dir: str | os.PathLike | None = None,
              opener: Callable | None = None) -> tuple[ClientData, ClientData]:
  """Fashion-MNIST split across `num_clients` clients, as (train, test) ClientData.

  Examples are `{"pixels": float32[28, 28] in [0, 1], "label": int32}`;
  client ids are "0" ... str(num_clients - 1), the same in train and test.
  The split is MNIST's (`fedjit.simulation.datasets.mnist.load_data`): the
  training images IID or by Dirichlet label skew, the test images dealt so
  that each client's test labels follow its training labels.

  Args:
    path: a folder with the four IDX files (see `load_arrays`); None looks
      in the cache folder, then in `DEBIAN_DIR`.
    num_clients: the number of clients.
    partition: "iid" or "dirichlet".
    alpha: the Dirichlet concentration (ignored for "iid").
    seed: seed of the split (None: a fresh random one).
    min_partition_size: least training examples per client ("dirichlet").
    download: download the files (30.9 MB) when they are not found.
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
    >>> train, test = load_data(num_clients=10, partition="iid")
    >>> len(train.create_dataset_for_client("0"))
    6000
  """
  arrays = load_arrays(path, download=download, cache_dir=cache_dir, opener=opener)
  return _federate(arrays, num_clients, partition, alpha, min_partition_size, seed)
