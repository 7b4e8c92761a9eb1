"""scikit-learn's 8x8 handwritten digits, split non-IID across clients.

The default dataset of `fedjit simulate`: small, bundled, no download, and
split in milliseconds.

Source: the test set of the UCI "Optical Recognition of Handwritten Digits"
data set (E. Alpaydin and C. Kaynak, 1998,
https://archive.ics.uci.edu/dataset/80), as bundled with scikit-learn
(`sklearn.datasets.load_digits`, file `sklearn/datasets/data/digits.csv.gz`).

License: CC BY 4.0 (the UCI repository's license for the data set);
scikit-learn itself is BSD-3-Clause.

Size: 1,797 grayscale 8x8 images of the digits 0-9 (174 to 183 per class),
integer pixels 0-16; a 57 KB file inside scikit-learn.

Pixels are scaled to [0, 1] (divided by 16) and flattened: examples are
`{"pixels": float32[64], "label": int32}`. The images are split across
clients by Dirichlet label skew (`fedjit.simulation.partitioners.dirichlet`:
per class, shares p ~ Dir(alpha); smaller alpha is more non-IID), then each
client's examples are split into train and test
(`ClientData.split_within_clients`).

Example:
  >>> train, test = fedjit.simulation.datasets.digits.load_data(num_clients=10, alpha=0.5)
  >>> str(train.element_type_structure)
  '<label=int32,pixels=float32[64]>'
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pathlib

import numpy as np

from fedjit.simulation import partitioners
from fedjit.simulation._client_data import ClientData

__all__ = ["NUM_EXAMPLES", "load_arrays", "load_data"]

NUM_EXAMPLES = 1797


def _bundled_csv() -> pathlib.Path | None:
  """scikit-learn's digits.csv.gz, found without importing scikit-learn."""
  spec = importlib.util.find_spec("sklearn")
  if spec is None or not spec.origin:
    return None
  path = pathlib.Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
  return path if path.is_file() else None


@functools.lru_cache(maxsize=1)
def _arrays() -> tuple[np.ndarray, np.ndarray]:
  # Reading the bundled file directly takes milliseconds; importing
  # sklearn.datasets (and SciPy) takes seconds.
  path = _bundled_csv()
  if path is not None:
    with gzip.open(path, "rt") as f:
      table = np.loadtxt(f, delimiter=",")
    data, target = table[:, :-1], table[:, -1]
  else:
    try:
      from sklearn.datasets import load_digits
    except ImportError as e:
      raise ImportError("The digits dataset is bundled with scikit-learn: "
                        "`pip install scikit-learn`.") from e
    digits = load_digits()
    data, target = digits.data, digits.target
  pixels = (data / 16.0).astype(np.float32)
  labels = target.astype(np.int32)
  pixels.flags.writeable = False
  labels.flags.writeable = False
  return pixels, labels


def load_arrays() -> tuple[np.ndarray, np.ndarray]:
  """The centralized digits: pixels float32 `[1797, 64]` in [0, 1] and labels
  int32 `[1797]` (read-only arrays, cached).

  Example:
    >>> x, y = load_arrays()
    >>> x.shape, int(y[0])
    ((1797, 64), 0)
  """
  return _arrays()


def load_data(num_clients: int = 10, alpha: float = 0.5, test_fraction: float = 0.2,
              seed: int | None = 0, min_partition_size: int | None = None
              ) -> tuple[ClientData, ClientData]:
  """The digits split non-IID across `num_clients` clients, as (train, test).

  The 1,797 examples are partitioned with
  `partitioners.dirichlet(labels, num_clients, alpha, min_partition_size,
  seed)`; then a random `test_fraction` of each client's examples (rounded;
  at least one stays for training) forms its test set. Client ids are "0" ...
  str(num_clients - 1) in both. The result depends only on the arguments.

  Args:
    num_clients: the number of clients (at most 1,797).
    alpha: the Dirichlet concentration, > 0: 0.1 gives clients a few
      classes each, 100 nearly the global label mix.
    test_fraction: the share of each client's examples held out, in (0, 1).
    seed: seed of the split (None: a fresh random one).
    min_partition_size: least examples per client; None for
      `max(1, min(10, 1797 // (4 * num_clients)))`, which the Dirichlet
      draw can meet for the usual settings.

  Returns:
    `(train, test)` ClientData of `{"pixels": float32[64], "label": int32}`.

  Raises:
    ValueError: for a bad `alpha`, `num_clients` or `test_fraction`, or if
      no Dirichlet draw gives every client `min_partition_size` examples
      (the message says what to change).

  Example:
    >>> train, test = load_data(num_clients=20, alpha=0.1, seed=1)
    >>> sum(len(train.create_dataset_for_client(c)) + len(test.create_dataset_for_client(c))
    ...     for c in train.client_ids)
    1797
  """
  pixels, labels = _arrays()
  if isinstance(num_clients, bool) or not isinstance(num_clients, (int, np.integer)) \
      or not 1 <= num_clients <= len(labels):
    raise ValueError(f"num_clients must be an int in [1, {len(labels)}], got {num_clients!r}.")
  if min_partition_size is None:
    min_partition_size = max(1, min(10, len(labels) // (4 * int(num_clients))))
  parts = partitioners.dirichlet(labels, int(num_clients), alpha=alpha,
                                 min_partition_size=min_partition_size, seed=seed,
                                 max_tries=100)
  data = ClientData.from_partition({"pixels": pixels, "label": labels}, parts)
  return data.split_within_clients(test_fraction, seed=seed)
