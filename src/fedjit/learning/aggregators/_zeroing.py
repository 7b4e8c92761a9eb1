"""Adaptive zeroing of outsized client values, as `tff.learning.dp_aggregator`
uses it (TFF's `robust.zeroing_factory` with a no-noise quantile estimate).

Private for now: `dp_aggregator(zeroing=True)` is its only user. The public
`zeroing_factory` / `clipping_factory` of issue 15's robust part should take
its place.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning.aggregators._mean import (SumFactory, UnweightedAggregationFactory,
                                               _check_value_type)
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput

FLOAT = TensorType(np.float32)


class _AdaptiveZeroingFactory(UnweightedAggregationFactory):
  """Zeroes every client value whose ℓ∞ norm exceeds Z = multiplier · E +
  increment, then aggregates with `inner`.

  E estimates the `target_quantile` of the clients' norms without noise
  (Andrew et al.'s geometric update on the exact unclipped fraction f):
  E ← E · exp(-learning_rate · (f - target_quantile)). TFF's dp_aggregator
  defaults: E₀ = 10, target 0.98, learning rate ln 10, Z = 2E + 1.

  State: `OrderedDict(zeroing_norm=E, inner_agg=..., zeroed_count_agg=())`;
  measurements: `OrderedDict(zeroing=inner measurements, zeroing_norm=Z,
  zeroed_count=int32)`, TFF's names.
  """

  def __init__(self, inner: UnweightedAggregationFactory, initial_estimate: float = 10.0,
               target_quantile: float = 0.98, learning_rate: float = math.log(10.0),
               multiplier: float = 2.0, increment: float = 1.0):
    self._inner = inner
    self._params = (initial_estimate, target_quantile, learning_rate, multiplier, increment)

  @property
  def accountant(self):
    """The inner factory's `PrivacyAccountant` (None if it has none)."""
    return getattr(self._inner, "accountant", None)

  def create(self, value_type: Any) -> AggregationProcess:
    e0, target, lr, multiplier, increment = self._params
    value_type = _check_value_type("zeroing", value_type)
    inner = self._inner.create(value_type)
    count_process = SumFactory().create(TensorType(np.int32))

    @fedjit.jax_computation
    def initial_estimate():
      return jnp.float32(e0)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip(collections.OrderedDict(
          zeroing_norm=fedjit.federated_eval(initial_estimate, SERVER),
          inner_agg=inner.initialize(), zeroed_count_agg=count_process.initialize()))

    @fedjit.jax_computation(FLOAT)
    def report(estimate):
      return jnp.float32(multiplier) * estimate + jnp.float32(increment)

    @fedjit.jax_computation(value_type, FLOAT, FLOAT)
    def zero(value, zeroing_norm, estimate):
      leaves = jax.tree_util.tree_leaves(value)
      norm = jnp.max(jnp.stack([jnp.max(jnp.abs(x)).astype(jnp.float32) for x in leaves]))
      should_zero = norm > zeroing_norm
      zeroed = jax.tree_util.tree_map(
          lambda x: jnp.where(should_zero, jnp.zeros_like(x), x), value)
      below = (norm <= estimate).astype(jnp.float32)
      return zeroed, below, should_zero.astype(jnp.int32)

    @fedjit.jax_computation(FLOAT, FLOAT)
    def update(estimate, below_fraction):
      f = jnp.clip(below_fraction, 0.0, 1.0)
      return estimate * jnp.exp(-jnp.float32(lr) * (f - jnp.float32(target)))

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      zeroing_norm = fedjit.federated_map(report, state.zeroing_norm)
      zeroed, below, was_zeroed = fedjit.federated_map(
          zero, (value, fedjit.federated_broadcast(zeroing_norm),
                 fedjit.federated_broadcast(state.zeroing_norm)))
      new_estimate = fedjit.federated_map(update, (state.zeroing_norm,
                                                   fedjit.federated_mean(below)))
      out = inner.next(state.inner_agg, zeroed)
      count = count_process.next(state.zeroed_count_agg, was_zeroed)
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(
              zeroing_norm=new_estimate, inner_agg=out.state,
              zeroed_count_agg=count.state)),
          out.result,
          fedjit.federated_zip(collections.OrderedDict(
              zeroing=out.measurements, zeroing_norm=zeroing_norm,
              zeroed_count=count.result)))

    return AggregationProcess(initialize_fn, next_fn)
