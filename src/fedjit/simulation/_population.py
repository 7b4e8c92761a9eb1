"""Client data kept on the device: pad every client once, move only indices.

Passing a round's client datasets to `next` as lists costs a copy of the
cohort's data every round (on the vectorized backend it is padded into one
array). For a simulation that samples cohorts from a fixed federated dataset,
a `Population` pads every client once and keeps the result in device memory;
a round's cohort (`population.cohort(ids)`) is then a few index arrays, and
the compiled round reads each client's rows where it uses them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from fedjit.core import CLIENTS, FederatedType, SequenceType, StructType, prepare_population

__all__ = ["Population"]


def client_data_type(target: Any) -> SequenceType:
  """The client dataset type (a SequenceType) that `target` takes.

  `target` is a process (its `next` computation is used), a computation (its
  first `{Sequence}@CLIENTS` parameter), a `{Sequence}@CLIENTS` type, or a
  SequenceType.
  """
  if isinstance(target, SequenceType):
    return target
  if isinstance(target, FederatedType):
    if target.placement == CLIENTS and isinstance(target.member, SequenceType):
      return target.member
    raise TypeError(f"Expected client datasets, a {{Sequence}}@CLIENTS type; got {target}.")
  comp = getattr(target, "next", target)
  signature = getattr(comp, "type_signature", None)
  if signature is None:
    raise TypeError(
        f"Population needs to know the client data's type: pass the process (e.g. from "
        f"build_weighted_fed_avg), its `next` computation, or a SequenceType; got "
        f"{type(target).__name__}.")
  param = signature.parameter
  params = list(param.types()) if isinstance(param, StructType) else [param]
  for p in params:
    if (isinstance(p, FederatedType) and p.placement == CLIENTS and not p.all_equal
        and isinstance(p.member, SequenceType)):
      return p.member
  raise TypeError(f"The computation {signature} takes no client datasets "
                  f"({{Sequence}}@CLIENTS parameter), so a Population cannot feed it.")


class Population:
  """A federated dataset padded once and kept in device memory.

  Every client's dataset is checked against the type the process takes and
  padded once, grouped by length into a few buckets; `cohort(client_ids)`
  then gives a round's client data as index arrays, to pass to `next` in
  place of a list of datasets. The round reads each client's rows inside the
  compiled program, so no client data is copied per round. `run_training`
  does this on its own (`cache_clients`); use a Population in your own loop.

  Memory: about the padded size of all clients' data (see `nbytes`), once.
  Results are the same as passing the clients' datasets as lists, on either
  backend (the reference backend gets the datasets back as lists).

  Args:
    process: what the cohorts are for: a process (e.g. from
      `build_weighted_fed_avg`), a federated computation taking
      `{Sequence}@CLIENTS`, or the client datasets' SequenceType.
    client_data: a `ClientData`, a mapping `{client_id: dataset}`, or a list
      of datasets (their ids are then their positions, 0, 1, ...). A dataset
      is a fedjit `Dataset` or a list of batches.

  Example:
    >>> population = fedjit.simulation.Population(trainer, train)
    >>> for r in range(10):
    ...   ids = fedjit.simulation.sample_clients(train.client_ids, 100, round_num=r)
    ...   result = trainer.next(state, population.cohort(ids))
    ...   state = result.state
  """

  def __init__(self, process: Any, client_data: Any):
    member = client_data_type(process)
    if hasattr(client_data, "client_ids") and hasattr(client_data, "create_dataset_for_client"):
      ids = list(client_data.client_ids)
      datasets = [client_data.create_dataset_for_client(c) for c in ids]
    elif isinstance(client_data, Mapping):
      ids, datasets = list(client_data.keys()), list(client_data.values())
    elif isinstance(client_data, Sequence) and not isinstance(client_data, (str, bytes)):
      ids, datasets = list(range(len(client_data))), list(client_data)
    else:
      raise TypeError(f"Population takes a ClientData, a dict {{client_id: dataset}} or a "
                      f"list of datasets; got {type(client_data).__name__}.")
    if not datasets:
      raise ValueError("Population needs at least one client; the client data is empty.")
    self._index = {c: i for i, c in enumerate(ids)}
    if len(self._index) != len(ids):
      raise ValueError("Client ids must be unique.")
    self._ids = ids
    # Errors name a bad client by its id.
    self._padded = prepare_population(member, datasets, client_ids=ids)
    self.element_type = member.element

  @property
  def client_ids(self) -> list:
    """The clients' ids, in the order given."""
    return list(self._ids)

  def __len__(self) -> int:
    return len(self._ids)

  @property
  def nbytes(self) -> int:
    """Bytes of padded client data held (device memory)."""
    return self._padded.nbytes

  def cohort(self, client_ids: Iterable) -> Any:
    """The client data of these clients (in this order), to pass to `next`.

    Example:
      >>> result = trainer.next(state, population.cohort(["f0001", "f0007"]))
    """
    ids = list(client_ids)
    if not ids:
      raise ValueError("A cohort needs at least one client; got an empty list of ids.")
    missing = [c for c in ids if c not in self._index]
    if missing:
      raise KeyError(f"{len(missing)} client id(s) not in this Population, e.g. "
                     f"{missing[0]!r}; its ids are like {self._ids[:3]!r}.")
    return self._padded.gather(np.asarray([self._index[c] for c in ids], np.int64))

  def __repr__(self) -> str:
    return (f"Population({len(self)} clients, {self.nbytes / 2 ** 20:.1f} MiB padded, "
            f"{len(self._padded.populations)} length buckets)")
