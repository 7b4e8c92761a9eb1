"""Validation of every client update before it reaches an aggregate
(`UpdateValidationFactory`): non-finite values, bad weights and, optionally,
updates above a norm bound are rejected, counted and never averaged.

Types already fix each update's structure, shape and dtype (a value of
another type is refused where it enters the round, naming the client); what
a type cannot say is whether the numbers are sane. A rejected update gets
weight 0 and value 0 inside the compiled round, so it adds nothing to the
weighted sums: it never touches the model.
"""

from __future__ import annotations

import collections
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, FederatedType, TensorType
from fedjit.learning.aggregators._mean import (MeanFactory, UnweightedAggregationFactory,
                                               WeightedAggregationFactory, _check_value_type)
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput

__all__ = ["UpdateValidationFactory"]

FLOAT = TensorType(np.float32)
COUNTS = ("accepted", "rejected_non_finite", "rejected_weight", "rejected_norm")


class UpdateValidationFactory(WeightedAggregationFactory):
  """Checks each client's (update, weight) before the inner aggregation.

  A client's update is rejected when any of its values or its weight is NaN
  or infinite, when its weight is negative, or, with `norm_bound`, when the
  ℓ2 norm of the whole update (all tensors together) exceeds the bound. A
  rejected update is replaced by zeros with weight 0 before `inner` sees
  it, so it is left out of the weighted mean entirely (not averaged in as a
  zero). If every client is rejected, the default inner mean is 0 (no
  change to the model) instead of NaN.

  State: `OrderedDict(inner_agg=...)`; measurements:
  `OrderedDict(validation=<inner measurements>, accepted=, rejected_non_finite=,
  rejected_weight=, rejected_norm=)`, client counts (int32), each client
  counted once, under the first reason that applies in that order.

  Args:
    inner_agg_factory: a `WeightedAggregationFactory` for the accepted
      updates; default `MeanFactory(no_nan_division=True)`.
    norm_bound: the largest ℓ2 norm accepted (a positive number), or None
      for no bound.

  Raises:
    TypeError: `inner_agg_factory` is not a weighted factory (an unweighted
      one cannot leave a client out: use a robust aggregator instead), or
      `norm_bound` is not a number.
    ValueError: `norm_bound` is not positive and finite.

  Example:
    >>> trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
    ...     model, client_optimizer_fn,
    ...     model_aggregator=fedjit.aggregators.UpdateValidationFactory(norm_bound=10.0))
    >>> trainer.next(state, data).metrics["aggregator"]["rejected_norm"]
    0
  """

  def __init__(self, inner_agg_factory: "WeightedAggregationFactory | None" = None,
               norm_bound: "float | None" = None):
    if inner_agg_factory is None:
      inner_agg_factory = MeanFactory(no_nan_division=True)
    if not isinstance(inner_agg_factory, WeightedAggregationFactory):
      kind = ("an unweighted aggregation factory" if isinstance(
          inner_agg_factory, UnweightedAggregationFactory) else type(inner_agg_factory).__name__)
      raise TypeError(
          f"UpdateValidationFactory leaves a rejected client out by giving it weight 0, so "
          f"inner_agg_factory must be a WeightedAggregationFactory (such as MeanFactory()); "
          f"got {kind}. For unweighted aggregation robust to bad clients, use a robust "
          f"aggregator (e.g. fedjit.aggregators.CoordinateMedianFactory()).")
    if norm_bound is not None:
      if isinstance(norm_bound, bool) or not isinstance(norm_bound, numbers.Real):
        raise TypeError(f"UpdateValidationFactory expects norm_bound to be a number or None, "
                        f"got {norm_bound!r}.")
      if not (np.isfinite(norm_bound) and norm_bound > 0):
        raise ValueError(f"UpdateValidationFactory expects a positive, finite norm_bound, got "
                         f"{norm_bound!r}.")
      norm_bound = float(norm_bound)
    self._inner = inner_agg_factory
    self._norm_bound = norm_bound

  def create(self, value_type: Any, weight_type: Any = FLOAT) -> AggregationProcess:
    """An `AggregationProcess` for `(value_type, weight_type)` client pairs.

    Example:
      >>> process = UpdateValidationFactory(norm_bound=1.0).create(
      ...     fedjit.TensorType(np.float32, [2]), fedjit.TensorType(np.float32))
      >>> out = process.next(process.initialize(), [[0.3, 0.4], [3.0, 4.0]], [1.0, 1.0])
      >>> out.result, int(out.measurements["rejected_norm"])
      (array([0.3, 0.4], dtype=float32), 1)
    """
    value_type = _check_value_type("UpdateValidationFactory", value_type)
    weight_type = _check_value_type("UpdateValidationFactory", weight_type, "weight_type",
                                    floats=False)
    inner = self._inner.create(value_type, weight_type)
    bound = self._norm_bound

    @fedjit.jax_computation(value_type, weight_type)
    def check(value, weight):
      leaves = jax.tree_util.tree_leaves(value)
      finite = jnp.isfinite(weight)
      for x in leaves:
        finite = finite & jnp.all(jnp.isfinite(x))
      weight_ok = finite & (weight >= 0)
      # The norm of the finite values (a non-finite update is rejected anyway).
      square = sum(jnp.sum(jnp.square(jnp.where(jnp.isfinite(x), x, 0).astype(jnp.float32)))
                   for x in leaves)
      norm_ok = weight_ok if bound is None else weight_ok & (jnp.sqrt(square) <= bound)
      ok = norm_ok
      kept = jax.tree_util.tree_map(lambda x: jnp.where(ok, x, jnp.zeros_like(x)), value)
      kept_weight = jnp.where(ok, weight, jnp.zeros_like(weight))
      counts = collections.OrderedDict(
          accepted=ok.astype(jnp.int32),
          rejected_non_finite=(~finite).astype(jnp.int32),
          rejected_weight=(finite & ~weight_ok).astype(jnp.int32),
          rejected_norm=(weight_ok & ~norm_ok).astype(jnp.int32))
      return kept, kept_weight, counts

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip(collections.OrderedDict(inner_agg=inner.initialize()))

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS),
                                  FederatedType(weight_type, CLIENTS))
    def next_fn(state, value, weight):
      kept, kept_weight, counts = fedjit.federated_map(check, (value, weight))
      out = inner.next(state["inner_agg"], kept, kept_weight)
      totals = fedjit.federated_sum(counts)
      measurements = collections.OrderedDict(validation=out.measurements)
      for name in COUNTS:
        measurements[name] = totals[name]
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(inner_agg=out.state)),
          out.result, fedjit.federated_zip(measurements))

    return AggregationProcess(initialize_fn, next_fn)
