"""`ClientData`: a federated dataset, one `Dataset` per client id."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

from fedjit.core import Type
from fedjit.simulation._dataset import Dataset, concatenate

__all__ = ["ClientData", "UnknownClientError"]


class UnknownClientError(KeyError):
  """A client id that the federated dataset does not hold."""

  def __str__(self) -> str:  # KeyError would print the message quoted
    return str(self.args[0])


class ClientData:
  """A federated dataset: `client_ids` and a dataset for each (TFF's ClientData).

  Build one with `ClientData.from_clients_and_fn(ids, fn)` (datasets made on
  demand), `ClientData.from_arrays({id: arrays})`, or a loader in
  `fedjit.simulation.datasets`.

  Example:
    >>> data = ClientData.from_arrays({"a": {"x": np.zeros((5, 2))}, "b": {"x": np.ones((3, 2))}})
    >>> data.client_ids
    ['a', 'b']
    >>> len(data.create_dataset_for_client("b"))
    3
  """

  def __init__(self, client_ids: Sequence[str], create_dataset_fn: Callable[[str], Dataset],
               element_type_structure: Type | None = None):
    self._ids = [str(c) for c in client_ids]
    self._index = {c: i for i, c in enumerate(self._ids)}
    if len(self._index) != len(self._ids):
      raise ValueError("Client ids must be unique.")
    self._fn = create_dataset_fn
    self._spec = element_type_structure

  # ------------------------------------------------------------ construction

  @classmethod
  def from_clients_and_fn(cls, client_ids: Iterable[str],
                          create_dataset_fn: Callable[[str], Dataset]) -> "ClientData":
    """ClientData whose datasets `create_dataset_fn(client_id)` makes on demand.

    Example:
      >>> ClientData.from_clients_and_fn(["a", "b"], lambda cid: make_dataset(cid))
    """
    return cls(list(client_ids), create_dataset_fn)

  from_clients_and_tf_fn = from_clients_and_fn  # TFF's name

  @classmethod
  def from_arrays(cls, arrays_by_client: Mapping[Any, Any]) -> "ClientData":
    """ClientData from `{client_id: arrays}`, each a pytree of arrays whose
    first axis is the client's examples.

    Example:
      >>> ClientData.from_arrays({"0": (x[:10], y[:10]), "1": (x[10:], y[10:])})
    """
    datasets = {str(k): Dataset.from_tensor_slices(v) for k, v in arrays_by_client.items()}
    if not datasets:
      raise ValueError("from_arrays needs at least one client.")
    return cls(list(datasets), datasets.__getitem__)

  @classmethod
  def from_partition(cls, arrays: Any, partition: Sequence[np.ndarray],
                     client_ids: Sequence[str] | None = None) -> "ClientData":
    """ClientData from a centralized dataset and a partition of its indices
    (see `fedjit.simulation.partitioners`).

    Example:
      >>> parts = partitioners.dirichlet(labels, num_partitions=10, alpha=0.5, seed=0)
      >>> data = ClientData.from_partition({"x": x, "y": labels}, parts)
    """
    arrays = jax.tree_util.tree_map(np.asarray, arrays)
    ids = [str(i) for i in range(len(partition))] if client_ids is None else list(client_ids)
    if len(ids) != len(partition):
      raise ValueError(f"{len(ids)} client ids for {len(partition)} partitions.")
    return cls.from_arrays({cid: jax.tree_util.tree_map(lambda a, idx=np.asarray(p): a[idx], arrays)
                            for cid, p in zip(ids, partition)})

  # -------------------------------------------------------------- inspection

  @property
  def client_ids(self) -> list[str]:
    """The client ids, in a fixed order."""
    return list(self._ids)

  def __len__(self) -> int:
    return len(self._ids)

  def __contains__(self, client_id) -> bool:
    return str(client_id) in self._index

  @property
  def element_type_structure(self) -> Type:
    """The type of one element of a client's dataset."""
    if self._spec is None:
      self._spec = self.create_dataset_for_client(self._ids[0]).element_spec
    return self._spec

  def create_dataset_for_client(self, client_id: Any) -> Dataset:
    """The dataset of one client.

    Raises:
      UnknownClientError: (a KeyError) if there is no such client.
    """
    cid = str(client_id)
    if cid not in self._index:
      examples = ", ".join(repr(c) for c in self._ids[:3])
      raise UnknownClientError(
          f"Unknown client id {client_id!r}: this federated dataset has "
          f"{len(self._ids)} clients, with ids such as {examples}. Use one of "
          f"`client_data.client_ids`.")
    return self._fn(cid)

  def create_tf_dataset_for_client(self, client_id: Any) -> Dataset:
    """TFF's old name for `create_dataset_for_client`."""
    return self.create_dataset_for_client(client_id)

  def datasets(self, limit_count: int | None = None, seed: int | None = None):
    """Yields the clients' datasets (in a seeded random order if `seed`)."""
    ids = self._ids if seed is None else list(np.random.default_rng(seed).permutation(self._ids))
    for cid in ids[:limit_count]:
      yield self.create_dataset_for_client(cid)

  def create_dataset_from_all_clients(self, seed: int | None = None) -> Dataset:
    """All clients' examples in one dataset (clients in order, or shuffled
    by client with `seed`).

    Example:
      >>> central_test = emnist_test.create_dataset_from_all_clients()
    """
    datasets = [d for d in self.datasets(seed=seed) if len(d)]
    if not datasets:
      raise ValueError("Every client's dataset is empty.")
    return concatenate(datasets)

  create_tf_dataset_from_all_clients = create_dataset_from_all_clients  # TFF's name

  # ---------------------------------------------------------- transformations

  def preprocess(self, preprocess_fn: Callable[[Dataset], Dataset]) -> "ClientData":
    """ClientData whose datasets are `preprocess_fn(dataset)`.

    Example:
      >>> train = emnist_train.preprocess(lambda ds: ds.batch(20))
    """
    fn = self._fn
    return ClientData(self._ids, lambda cid: preprocess_fn(fn(cid)))

  def filter_clients(self, predicate: Callable[[str], bool]) -> "ClientData":
    """ClientData with only the clients for which `predicate(id)` holds."""
    ids = [c for c in self._ids if predicate(c)]
    if not ids:
      raise ValueError("filter_clients kept no client.")
    return ClientData(ids, self._fn, self._spec)

  def train_test_client_split(self, num_test_clients: int, seed: int | None = None
                              ) -> tuple["ClientData", "ClientData"]:
    """Splits by clients: `num_test_clients` random clients go to the test set.

    Example:
      >>> train, test = data.train_test_client_split(num_test_clients=100, seed=0)
    """
    if not 0 < num_test_clients < len(self._ids):
      raise ValueError(f"num_test_clients must be between 1 and {len(self._ids) - 1}, "
                       f"got {num_test_clients}.")
    order = np.random.default_rng(seed).permutation(len(self._ids))
    test_ids = {self._ids[i] for i in order[:num_test_clients]}
    train = [c for c in self._ids if c not in test_ids]
    test = [c for c in self._ids if c in test_ids]
    return ClientData(train, self._fn, self._spec), ClientData(test, self._fn, self._spec)

  def split_within_clients(self, test_fraction: float, seed: int | None = None
                           ) -> tuple["ClientData", "ClientData"]:
    """Splits every client's examples: a random `test_fraction` of each goes
    to the test set (at least one example stays for training).

    Example:
      >>> train, test = data.split_within_clients(0.2, seed=0)
    """
    if not 0.0 < test_fraction < 1.0:
      raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    fn = self._fn

    def part(cid, which):
      ds = fn(cid)
      n = len(ds)
      rng = np.random.default_rng([seed if seed is not None else 0,
                                   zlib.crc32(cid.encode("utf-8"))])
      order = rng.permutation(n)
      n_test = min(int(round(n * test_fraction)), max(n - 1, 0))
      idx = np.sort(order[:n_test] if which == "test" else order[n_test:])
      return ds._reindex(idx)

    return (ClientData(self._ids, lambda c: part(c, "train"), self._spec),
            ClientData(self._ids, lambda c: part(c, "test"), self._spec))

  def __repr__(self) -> str:
    return f"<fedjit ClientData: {len(self._ids)} clients>"
