"""`ClientData`: a federated dataset, one `Dataset` per client id."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

from fedjit.core import Type
from fedjit.simulation._dataset import Dataset, _as_arrays, concatenate

__all__ = ["ClientData", "TestClientData", "UnknownClientError"]


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
    """The type of one element of a client's dataset.

    Example:
      >>> str(ClientData.from_arrays({"a": {"x": np.zeros((5, 2))}}).element_type_structure)
      '<x=float32[2]>'
    """
    if self._spec is None:
      self._spec = self.create_dataset_for_client(self._ids[0]).element_spec
    return self._spec

  @property
  def element_spec(self) -> Type:
    """`element_type_structure` by the name a dataset has for it (`tf.data`'s).

    Example:
      >>> data = ClientData.from_arrays({"a": {"x": [1.0, 2.0]}})
      >>> data.element_spec == data.element_type_structure
      True
    """
    return self.element_type_structure

  @property
  def serializable_dataset_fn(self) -> Callable[[str], Dataset]:
    """TFF's name for the function from a client id to its dataset.

    Example:
      >>> ClientData.from_arrays({"a": [1.0, 2.0]}).serializable_dataset_fn("a").numpy()
      array([1., 2.], dtype=float32)
    """
    return self.create_dataset_for_client

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


def _slices_kind(client_id: Any, value: Any) -> str:
  """What a TestClientData value is: 'dataset', 'dict', 'tuple' or 'list or array'."""
  if isinstance(value, Dataset):
    return "dataset"
  if isinstance(value, tuple) and hasattr(value, "_fields"):
    raise TypeError(
        f"The tensor slices of client {client_id!r} are a namedtuple "
        f"({type(value).__name__}), but TestClientData takes lists, tuples (not "
        f"namedtuples), dicts or datasets, as TFF's does. Convert it with "
        f"value._asdict(), or pass Dataset.from_tensor_slices(value).")
  if isinstance(value, Mapping):
    return "dict"
  if isinstance(value, tuple):
    return "tuple"
  if isinstance(value, (list, np.ndarray, jax.Array)):
    return "list or array"
  raise TypeError(
      f"TestClientData takes, for each client id, a Dataset or tensor slices for "
      f"Dataset.from_tensor_slices (a list, tuple, dict or array); client "
      f"{client_id!r} has a {type(value).__name__}.")


def _common_string_widths(columns: list) -> list:
  """The clients' columns with each string component cast to its widest
  width over all clients, so that all clients have one element type."""
  flat = [jax.tree_util.tree_flatten(c) for c in columns]
  if len({str(treedef) for _, treedef in flat}) > 1:
    return columns  # structures differ; the element types will say how
  leaves = [l for l, _ in flat]
  for k in range(len(leaves[0])):
    dtypes = [ls[k].dtype for ls in leaves]
    if all(dt.kind == "U" for dt in dtypes) or all(dt.kind == "S" for dt in dtypes):
      widest = max(dtypes, key=lambda dt: dt.itemsize)
      for ls in leaves:
        ls[k] = ls[k].astype(widest)
  return [jax.tree_util.tree_unflatten(treedef, ls) for (_, treedef), ls in zip(flat, leaves)]


class TestClientData(ClientData):
  """A small in-memory `ClientData` for tests and toy simulations (TFF's
  `tff.simulation.datasets.TestClientData`).

  Each client's data is a `Dataset`, or tensor slices for
  `Dataset.from_tensor_slices`: a list, tuple or dict (nested too) of lists or
  arrays whose first axis is the client's examples. All clients must give the
  same kind of structure (all lists, all tuples or all dicts; namedtuples are
  refused, as in TFF) and the same element type.

  Args:
    tensor_slices_dict: a dict from client id to the client's data.
    client_data: the same dict, by keyword (either argument, not both).

  Raises:
    TypeError: if the argument is not a dict, a client's structure is a
      namedtuple, the clients' structures or element types differ.
    ValueError: if there are no clients, or a client has no examples.

  Example:
    >>> data = TestClientData({'a': [1, 2, 3], 'b': [4, 5]})
    >>> data.client_ids, str(data.element_type_structure)
    (['a', 'b'], 'int32')
    >>> data.create_tf_dataset_for_client('b').as_elements()
    [np.int32(4), np.int32(5)]
    >>> seed_style = TestClientData(client_data={'c': Dataset.from_tensor_slices({'x': [1.0]})})
    >>> str(seed_style.element_spec)
    '<x=float32>'
  """

  __test__ = False  # not a pytest test class, despite its name

  def __init__(self, tensor_slices_dict: Mapping[Any, Any] | None = None, *,
               client_data: Mapping[Any, Any] | None = None):
    if tensor_slices_dict is not None and client_data is not None:
      raise TypeError("TestClientData takes the clients' data once: as its first "
                      "argument or as client_data=..., not both.")
    slices = client_data if tensor_slices_dict is None else tensor_slices_dict
    if not isinstance(slices, Mapping):
      raise TypeError(
          f"TestClientData takes a dict from client id to the client's data (a Dataset "
          f"or tensor slices for Dataset.from_tensor_slices); got a "
          f"{type(slices).__name__}. Example: TestClientData({{'a': [1, 2], 'b': [3]}}).")
    if not slices:
      raise ValueError("TestClientData needs at least one client, got an empty dict.")
    kinds = {cid: _slices_kind(cid, v) for cid, v in slices.items()}
    structured = {cid: k for cid, k in kinds.items() if k != "dataset"}
    if len(set(structured.values())) > 1:
      (a, ka), *rest = structured.items()
      b, kb = next((c, k) for c, k in rest if k != ka)
      raise TypeError(
          f"All clients of a TestClientData must give the same kind of tensor slices "
          f"(all lists, all tuples or all dicts), but client {a!r} gives a {ka} and "
          f"client {b!r} a {kb}.")
    columns = {cid: _as_arrays(slices[cid]) for cid in structured}
    if columns:  # one string width for all clients, so that their types agree
      widened = _common_string_widths(list(columns.values()))
      columns = dict(zip(columns, widened))
    datasets = {}
    for cid, value in slices.items():
      ds = value if kinds[cid] == "dataset" else Dataset.from_tensor_slices(columns[cid])
      if len(ds) == 0:
        raise ValueError(f"No data found for client {cid!r}: every client of a "
                         f"TestClientData needs at least one example.")
      datasets[str(cid)] = ds
    ids = list(datasets)
    spec = datasets[ids[0]].element_spec
    for cid in ids[1:]:
      other = datasets[cid].element_spec
      if other != spec:
        raise TypeError(
            f"All clients of a TestClientData must have the same element type, but "
            f"client {ids[0]!r} has {spec} and client {cid!r} has {other}. Convert "
            f"them to the same dtypes and shapes (e.g. all floats, or "
            f"np.asarray(values, np.float32)).")
    super().__init__(ids, datasets.__getitem__, spec)
