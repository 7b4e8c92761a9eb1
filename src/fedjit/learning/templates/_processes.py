"""Measured processes and the four stages of a learning process.

Every stage is an `IterativeProcess` whose `next` returns a
`MeasuredProcessOutput(state, result, measurements)`, state and
measurements placed at SERVER. Stages are built separately and composed
into a `LearningProcess`; their types are checked when composed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from fedjit.core import CLIENTS, SERVER, FederatedType, StructType
from fedjit.templates import (MeasuredProcess, MeasuredProcessOutput,
                              TemplatePlacementError)

__all__ = ["MeasuredProcessOutput", "MeasuredProcess", "ClientResult",
           "DistributionProcess", "ClientWorkProcess", "AggregationProcess",
           "FinalizerProcess"]


class ClientResult(NamedTuple):
  """A client's contribution: its model `update` and the `update_weight`."""
  update: Any
  update_weight: Any


class _Stage(MeasuredProcess):
  """A stage of a learning process: a measured process whose state and
  measurements are placed at SERVER."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    result = next_fn.type_signature.result
    for name in ("state", "measurements"):
      t = result[name]
      if not (isinstance(t, FederatedType) and t.placement == SERVER):
        raise TemplatePlacementError(f"{type(self).__name__}'s {name} must be placed at "
                                     f"SERVER, but has type {t}.")


class DistributionProcess(_Stage):
  """Sends server values to clients: `next(state, value@SERVER)` gives a
  `@CLIENTS` result."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == CLIENTS):
      raise TemplatePlacementError(f"A distributor's result must be at CLIENTS, got {r}.")


class ClientWorkProcess(_Stage):
  """Local training: `next(state, weights@CLIENTS, data@CLIENTS)` gives
  `{ClientResult(update, update_weight)}@CLIENTS`."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == CLIENTS and
            isinstance(r.member, StructType) and r.member.names() == ("update", "update_weight")):
      raise TemplatePlacementError(
          f"Client work must return {{ClientResult(update, update_weight)}}@CLIENTS, got {r}.")


class AggregationProcess(_Stage):
  """Combines client values: `next(state, value@CLIENTS[, weight@CLIENTS])`
  gives a `@SERVER` result."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == SERVER):
      raise TemplatePlacementError(f"An aggregator's result must be at SERVER, got {r}.")

  @property
  def is_weighted(self) -> bool:
    return len(self.next.param_names) == 3


class FinalizerProcess(_Stage):
  """Applies the aggregated update: `next(state, weights@SERVER,
  update@SERVER)` gives the new weights at SERVER."""

  def __init__(self, initialize_fn, next_fn):
    super().__init__(initialize_fn, next_fn)
    r = self.result_type
    if not (isinstance(r, FederatedType) and r.placement == SERVER):
      raise TemplatePlacementError(f"A finalizer's result must be at SERVER, got {r}.")
