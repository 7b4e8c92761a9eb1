"""Measured processes and the four stages of a learning process.

Every stage is an `IterativeProcess` whose `next` returns a
`MeasuredProcessOutput(state, result, measurements)`, state and
measurements placed at SERVER. Stages are built separately and composed
into a `LearningProcess`; their types are checked when composed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fedjit.core import CLIENTS, SERVER, FederatedType, FederatedTypeError, StructType
from fedjit.templates import IterativeProcess

__all__ = ["MeasuredProcessOutput", "MeasuredProcess", "ClientResult",
           "DistributionProcess", "ClientWorkProcess", "AggregationProcess",
           "FinalizerProcess"]


class MeasuredProcessOutput(NamedTuple):
  """What a measured process's `next` returns."""
  state: Any
  result: Any
  measurements: Any


class ClientResult(NamedTuple):
  """A client's contribution: its model `update` and the `update_weight`."""
  update: Any
  update_weight: Any


def _result_fields(process_name: str, next_fn) -> StructType:
  result = next_fn.type_signature.result
  if not (isinstance(result, StructType) and result.names() == ("state", "result",
                                                                 "measurements")):
    raise FederatedTypeError(
        f"{process_name}'s next must return MeasuredProcessOutput(state, result, "
        f"measurements), but returns {result}.")
  for name in ("state", "measurements"):
    t = result[name]
    if not (isinstance(t, FederatedType) and t.placement == SERVER):
      raise FederatedTypeError(f"{process_name}'s {name} must be placed at SERVER, "
                               f"but has type {t}.")
  return result


class MeasuredProcess(IterativeProcess):
  """An iterative process whose `next` returns `MeasuredProcessOutput`.

  Example:
    >>> process = MeasuredProcess(initialize_fn, next_fn)
    >>> output = process.next(process.initialize(), values)
    >>> output.result, output.measurements
  """

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    self._result_type = _result_fields(type(self).__name__, next_fn)

  @property
  def result_type(self):
    return self._result_type["result"]


class DistributionProcess(MeasuredProcess):
  """Sends server values to clients: `next(state, value@SERVER)` gives a
  `@CLIENTS` result."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == CLIENTS):
      raise FederatedTypeError(f"A distributor's result must be at CLIENTS, got {r}.")


class ClientWorkProcess(MeasuredProcess):
  """Local training: `next(state, weights@CLIENTS, data@CLIENTS)` gives
  `{ClientResult(update, update_weight)}@CLIENTS`."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == CLIENTS and
            isinstance(r.member, StructType) and r.member.names() == ("update", "update_weight")):
      raise FederatedTypeError(
          f"Client work must return {{ClientResult(update, update_weight)}}@CLIENTS, got {r}.")


class AggregationProcess(MeasuredProcess):
  """Combines client values: `next(state, value@CLIENTS[, weight@CLIENTS])`
  gives a `@SERVER` result."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == SERVER):
      raise FederatedTypeError(f"An aggregator's result must be at SERVER, got {r}.")

  @property
  def is_weighted(self) -> bool:
    return len(self.next.param_names) == 3


class FinalizerProcess(MeasuredProcess):
  """Applies the aggregated update: `next(state, weights@SERVER,
  update@SERVER)` gives the new weights at SERVER."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == SERVER):
      raise FederatedTypeError(f"A finalizer's result must be at SERVER, got {r}.")
