"""Metrics aggregators: how the clients' metric sums become the round's
metrics at the server (TFF's `tff.learning.metrics.sum_then_finalize`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import fedjit
from fedjit.core import CLIENTS, FederatedType, to_type

__all__ = ["sum_then_finalize"]


def _finalizer_fn(metric_finalizers: Any) -> Callable:
  """One function of the whole metric state, from either TFF form: a
  callable (a functional model's `finalize_metrics`) or a mapping of metric
  names to per-metric finalizers."""
  if callable(metric_finalizers):
    return metric_finalizers
  if isinstance(metric_finalizers, Mapping):
    def finalize(state):
      return {name: fn(state[name]) for name, fn in metric_finalizers.items()}
    return finalize
  raise TypeError(f"sum_then_finalize expects metric_finalizers to be a function of the "
                  f"metric state or a mapping of metric names to finalizers, got "
                  f"{metric_finalizers!r}.")


def sum_then_finalize(metric_finalizers: Any,
                      local_unfinalized_metrics_type: Any = None) -> Any:
  """Sums the clients' unfinalized metrics, then finalizes the sum at the
  server: `finalize(Σᵢ stateᵢ)` (the default metrics aggregator of the
  learning builders, as in TFF).

  Args:
    metric_finalizers: a function of the (summed) metric state returning the
      metric values, or a mapping `{name: finalizer of that metric's state}`.
      Learning processes pass one object that is both.
    local_unfinalized_metrics_type: the type of one client's metric state.
      When given, the result is a federated computation of
      `{type}@CLIENTS -> metrics@SERVER`; without it, a function to call
      inside a federated computation (fedjit computations with parameters
      need their types).

  Returns:
    The aggregation: called on `{metric state}@CLIENTS`, it returns the
    finalized metrics at SERVER.

  Example:
    >>> trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
    ...     model, build_sgdm(0.1),
    ...     metrics_aggregator=fedjit.learning.metrics.sum_then_finalize)
  """
  finalize = _finalizer_fn(metric_finalizers)

  def aggregate(client_local_unfinalized_metrics):
    summed = fedjit.federated_sum(client_local_unfinalized_metrics)

    @fedjit.jax_computation(summed.type_signature.member)
    def finalize_metrics(unfinalized_metrics):
      return finalize(unfinalized_metrics)
    return fedjit.federated_map(finalize_metrics, summed)

  if local_unfinalized_metrics_type is None:
    return aggregate
  return fedjit.federated_computation(
      FederatedType(to_type(local_unfinalized_metrics_type), CLIENTS))(aggregate)
