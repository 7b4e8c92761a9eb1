"""Aggregation factories: `create(value_type[, weight_type])` gives an
`AggregationProcess` with its own state and measurements.

Aggregators wrap aggregators: `MeanFactory` and `UnweightedMeanFactory` take
inner (unweighted) factories for their sums, as in TFF, and later factories
(differential privacy, clipping, compression, secure summation) slot in the
same way.
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import (CLIENTS, SERVER, FederatedType, FunctionType, SequenceType,
                         StructType, TensorType, to_type)
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


def _tensor_leaves(t) -> list[TensorType] | None:
  """The tensor types in a (struct of) tensor type; None if `t` holds
  anything else (a placement, a function, a sequence)."""
  if isinstance(t, TensorType):
    return [t]
  if isinstance(t, StructType):
    leaves = []
    for e in t.types():
      sub = _tensor_leaves(e)
      if sub is None:
        return None
      leaves += sub
    return leaves
  return None


def _with_dtype(t, dtype):
  """`t` (a tensor or structure of tensors) with every tensor of `dtype`."""
  if isinstance(t, TensorType):
    return TensorType(dtype, t.shape)
  return StructType([(n, _with_dtype(e, dtype)) for n, e in t.items()], container=t.container)


def _check_value_type(factory: str, value_type: Any, what: str = "value_type",
                      floats: bool = True):
  """`value_type` as a fedjit type; TypeError unless it is an unplaced
  tensor or structure of tensors (of floats, for values to average)."""
  if isinstance(value_type, (FederatedType, FunctionType, SequenceType)):
    t = value_type
  else:
    try:
      t = to_type(value_type)
    except (TypeError, ValueError) as e:
      raise TypeError(f"{factory}.create expects {what} to be a tensor type or a structure "
                      f"of them (such as fedjit.TensorType(np.float32, [10])); got "
                      f"{value_type!r}.") from e
  leaves = _tensor_leaves(t)
  if leaves is None:
    raise TypeError(
        f"{factory}.create expects {what} to be the type of one client's value: a tensor "
        f"type or a structure of them, without placement (such as "
        f"fedjit.TensorType(np.float32, [10])); got {t}. Pass the member type, "
        f"e.g. `t.member` for a FederatedType `t`.")
  if floats and not all(np.issubdtype(l.dtype, np.floating) for l in leaves):
    raise TypeError(f"{factory} averages floating-point values, so every tensor in "
                    f"{what} must have a float dtype; got {t}. Cast the values to "
                    f"np.float32 first.")
  return t


def _check_factory(owner: str, name: str, factory: Any) -> Any:
  if factory is None:
    return SumFactory()
  if not isinstance(factory, UnweightedAggregationFactory):
    raise TypeError(f"{owner} expects {name} to be a fedjit.learning.aggregators."
                    f"UnweightedAggregationFactory (such as SumFactory()), got {factory!r}.")
  return factory


def _mul(value_type, weight_type):
  @fedjit.jax_computation(value_type, weight_type)
  def mul(value, weight):
    return jax.tree_util.tree_map(lambda x: x * jnp.asarray(weight).astype(x.dtype), value)
  return mul


def _div(value_type, weight_type, no_nan: bool):
  def divide(x, w):
    w = jnp.asarray(w).astype(x.dtype)
    if no_nan:  # tf.math.divide_no_nan: 0 where the divisor is 0
      return jnp.where(w == 0, jnp.zeros_like(x), x / jnp.where(w == 0, 1, w))
    return x / w

  @fedjit.jax_computation(value_type, weight_type)
  def div(value_sum, weight_sum):
    return jax.tree_util.tree_map(lambda x: divide(x, weight_sum), value_sum)
  return div


class MeanFactory(WeightedAggregationFactory):
  """The weighted mean Σ wᵢvᵢ / Σ wᵢ (TFF's `MeanFactory`).

  The clients multiply their value by their weight; the inner
  `value_sum_factory` and `weight_sum_factory` (both `SumFactory()` by
  default) sum the products and the weights; the server divides.

  State: `{'value_sum_process': ..., 'weight_sum_process': ...}`, the inner
  processes' states; measurements: `{'mean_value': ..., 'mean_weight': ...}`,
  their measurements (`()` for `SumFactory`).

  Args:
    value_sum_factory: an `UnweightedAggregationFactory` for Σ wᵢvᵢ.
    weight_sum_factory: an `UnweightedAggregationFactory` for Σ wᵢ.
    no_nan_division: if True, the mean is 0 when the weights sum to 0
      (otherwise it is NaN or inf, as the division gives).

  Raises:
    TypeError: if an inner factory is not an `UnweightedAggregationFactory`,
      or `no_nan_division` is not a bool.

  Example:
    >>> process = MeanFactory().create(fedjit.TensorType(np.float32),
    ...                                fedjit.TensorType(np.float32))
    >>> process.next(process.initialize(), [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]).result
    np.float32(1.6666666)
  """

  def __init__(self, value_sum_factory: UnweightedAggregationFactory | None = None,
               weight_sum_factory: UnweightedAggregationFactory | None = None,
               no_nan_division: bool = False):
    self._value_sum_factory = _check_factory("MeanFactory", "value_sum_factory",
                                             value_sum_factory)
    self._weight_sum_factory = _check_factory("MeanFactory", "weight_sum_factory",
                                              weight_sum_factory)
    if not isinstance(no_nan_division, bool):
      raise TypeError(f"MeanFactory expects no_nan_division to be True or False, got "
                      f"{no_nan_division!r}.")
    self._no_nan_division = no_nan_division

  def create(self, value_type: Any, weight_type: Any = FLOAT) -> AggregationProcess:
    """An `AggregationProcess` for `(value_type, weight_type)` client pairs.

    Args:
      value_type: the type of one client's value (floats).
      weight_type: the type of one client's weight, a scalar; float32 by
        default (fedjit's client work sends float32 weights).

    Raises:
      TypeError: if either type is placed, a function or a sequence, or the
        value is not floating point.

    Example:
      >>> process = MeanFactory().create(update_type, fedjit.TensorType(np.float32))
    """
    value_type = _check_value_type("MeanFactory", value_type)
    weight_type = _check_value_type("MeanFactory", weight_type, "weight_type", floats=False)
    value_sum_process = self._value_sum_factory.create(value_type)
    weight_sum_process = self._weight_sum_factory.create(weight_type)
    # With plain sums and float32 weights, the intrinsic federated_mean is the
    # same Σ wᵢvᵢ / Σ wᵢ, and backends run it as one fused reduction.
    plain = (type(self._value_sum_factory) is SumFactory
             and type(self._weight_sum_factory) is SumFactory
             and not self._no_nan_division and weight_type == FLOAT)
    mul = _mul(value_type, weight_type)
    div = _div(value_sum_process.result_type.member, weight_sum_process.result_type.member,
               self._no_nan_division)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip(collections.OrderedDict(
          value_sum_process=value_sum_process.initialize(),
          weight_sum_process=weight_sum_process.initialize()))

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS),
                                  FederatedType(weight_type, CLIENTS))
    def next_fn(state, value, weight):
      if plain:
        value_out = MeasuredProcessOutput(state["value_sum_process"], None, _empty())
        weight_out = MeasuredProcessOutput(state["weight_sum_process"], None, _empty())
        mean = fedjit.federated_mean(value, weight)
      else:
        value_out = value_sum_process.next(state["value_sum_process"],
                                           fedjit.federated_map(mul, (value, weight)))
        weight_out = weight_sum_process.next(state["weight_sum_process"], weight)
        mean = fedjit.federated_map(div, (value_out.result, weight_out.result))
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(
              value_sum_process=value_out.state, weight_sum_process=weight_out.state)),
          mean,
          fedjit.federated_zip(collections.OrderedDict(
              mean_value=value_out.measurements, mean_weight=weight_out.measurements)))

    return AggregationProcess(initialize_fn, next_fn)


class UnweightedMeanFactory(UnweightedAggregationFactory):
  """The plain mean over clients, Σ vᵢ / n (TFF's `UnweightedMeanFactory`).

  The inner `value_sum_factory` sums the values and `count_sum_factory`
  sums a 1 (int32) from each client to count them (both `SumFactory()` by
  default). State: the pair of inner states; measurements:
  `{'mean_value': ..., 'mean_count': ...}`.

  Args:
    value_sum_factory: an `UnweightedAggregationFactory` for Σ vᵢ.
    count_sum_factory: an `UnweightedAggregationFactory` for n = Σ 1.

  Raises:
    TypeError: if an inner factory is not an `UnweightedAggregationFactory`.

  Example:
    >>> process = UnweightedMeanFactory().create(fedjit.TensorType(np.float32))
    >>> process.next(process.initialize(), [1.0, 2.0, 3.0]).result
    np.float32(2.0)
  """

  def __init__(self, value_sum_factory: UnweightedAggregationFactory | None = None,
               count_sum_factory: UnweightedAggregationFactory | None = None):
    self._value_sum_factory = _check_factory("UnweightedMeanFactory", "value_sum_factory",
                                             value_sum_factory)
    self._count_sum_factory = _check_factory("UnweightedMeanFactory", "count_sum_factory",
                                             count_sum_factory)

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` averaging `value_type` client values equally.

    Raises:
      TypeError: if the type is placed, a function or a sequence, or not
        floating point.

    Example:
      >>> process = UnweightedMeanFactory().create(update_type)
    """
    value_type = _check_value_type("UnweightedMeanFactory", value_type)
    value_sum_process = self._value_sum_factory.create(value_type)
    count_sum_process = self._count_sum_factory.create(TensorType(np.int32))
    div = _div(value_sum_process.result_type.member, count_sum_process.result_type.member,
               False)

    @fedjit.jax_computation
    def one():
      return jnp.int32(1)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip((value_sum_process.initialize(),
                                   count_sum_process.initialize()))

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      value_out = value_sum_process.next(state[0], value)
      ones = fedjit.federated_value(one(), CLIENTS)
      count_out = count_sum_process.next(state[1], ones)
      return MeasuredProcessOutput(
          fedjit.federated_zip((value_out.state, count_out.state)),
          fedjit.federated_map(div, (value_out.result, count_out.result)),
          fedjit.federated_zip(collections.OrderedDict(
              mean_value=value_out.measurements, mean_count=count_out.measurements)))

    return AggregationProcess(initialize_fn, next_fn)


class SumFactory(UnweightedAggregationFactory):
  """The sum over clients, Σ vᵢ (TFF's `SumFactory`). No state, no
  measurements (`()`).

  Example:
    >>> process = SumFactory().create(fedjit.TensorType(np.float32, [2]))
    >>> process.next(process.initialize(), [[1.0, 2.0], [0.5, -4.0]]).result
    array([ 1.5, -2. ], dtype=float32)
  """

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` summing `value_type` client values.

    Raises:
      TypeError: if the type is placed, a function or a sequence.

    Example:
      >>> process = SumFactory().create(fedjit.TensorType(np.int32))
    """
    value_type = _check_value_type("SumFactory", value_type, floats=False)

    @fedjit.federated_computation
    def initialize_fn():
      return _empty()

    @fedjit.federated_computation(FederatedType((), SERVER), FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      return MeasuredProcessOutput(state, fedjit.federated_sum(value), _empty())

    return AggregationProcess(initialize_fn, next_fn)
