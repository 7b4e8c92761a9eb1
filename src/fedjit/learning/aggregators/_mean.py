"""Aggregation factories: `create(value_type[, weight_type])` gives an
`AggregationProcess` with its own state and measurements.

Aggregators wrap aggregators: later factories (differential privacy,
clipping, compression, secure summation) take an inner factory and slot in
the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType, to_type
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput

__all__ = ["WeightedAggregationFactory", "UnweightedAggregationFactory", "MeanFactory",
           "UnweightedMeanFactory", "SumFactory"]

FLOAT = TensorType(np.float32)


class WeightedAggregationFactory:
  """Makes aggregators of `(value@CLIENTS, weight@CLIENTS) -> value@SERVER`."""

  def create(self, value_type: Any, weight_type: Any = FLOAT) -> AggregationProcess:
    raise NotImplementedError


class UnweightedAggregationFactory:
  """Makes aggregators of `value@CLIENTS -> value@SERVER`."""

  def create(self, value_type: Any) -> AggregationProcess:
    raise NotImplementedError


def _empty():
  return fedjit.federated_value((), SERVER)


class MeanFactory(WeightedAggregationFactory):
  """The weighted mean Σ wᵢvᵢ / Σ wᵢ (TFF's MeanFactory).

  Measurements: `{'mean_value': (), 'mean_weight': ()}`.

  Example:
    >>> aggregator = MeanFactory().create(update_type, fedjit.TensorType(np.float32))
  """

  def create(self, value_type, weight_type=FLOAT):
    value_type, weight_type = to_type(value_type), to_type(weight_type)

    @fedjit.federated_computation
    def initialize_fn():
      return _empty()

    @fedjit.federated_computation(FederatedType((), SERVER),
                                  FederatedType(value_type, CLIENTS),
                                  FederatedType(weight_type, CLIENTS))
    def next_fn(state, value, weight):
      return MeasuredProcessOutput(
          state, fedjit.federated_mean(value, weight),
          fedjit.federated_value(dict(mean_value=(), mean_weight=()), SERVER))

    return AggregationProcess(initialize_fn, next_fn)


class UnweightedMeanFactory(UnweightedAggregationFactory):
  """The plain mean over clients, Σ vᵢ / n (TFF's UnweightedMeanFactory).

  Example:
    >>> aggregator = UnweightedMeanFactory().create(update_type)
  """

  def create(self, value_type):
    value_type = to_type(value_type)

    @fedjit.federated_computation
    def initialize_fn():
      return _empty()

    @fedjit.federated_computation(FederatedType((), SERVER), FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      return MeasuredProcessOutput(state, fedjit.federated_mean(value),
                                   fedjit.federated_value(dict(mean_value=()), SERVER))

    return AggregationProcess(initialize_fn, next_fn)


class SumFactory(UnweightedAggregationFactory):
  """The sum over clients, Σ vᵢ (TFF's SumFactory).

  Example:
    >>> aggregator = SumFactory().create(fedjit.TensorType(np.float32, [10]))
  """

  def create(self, value_type):
    value_type = to_type(value_type)

    @fedjit.federated_computation
    def initialize_fn():
      return _empty()

    @fedjit.federated_computation(FederatedType((), SERVER), FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      return MeasuredProcessOutput(state, fedjit.federated_sum(value), _empty())

    return AggregationProcess(initialize_fn, next_fn)
