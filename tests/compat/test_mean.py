"""Port of TFF's mean aggregator tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/aggregators/mean_test.py (with
`SumPlusOneFactory` from aggregators/aggregator_test_utils.py).

Spelling: `tff.aggregators.X` -> `fedjit.learning.aggregators.X`,
`federated_language.X` -> `fedjit.X`, `tf.test` asserts -> pytest/NumPy,
`is_equivalent_to` -> assignable both ways (TFF's definition of it).
64-bit value or weight types run under `jax.enable_x64(True)`: JAX computes
in 32 bits unless its 64-bit mode is on, and fedjit refuses to declare
64-bit types without it.

Every case is ported; none is left out.
"""

import collections
import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, FunctionType, StructType, TensorType
from fedjit.learning import aggregators, templates
from fedjit.learning.aggregators import MeanFactory, UnweightedMeanFactory

M_CONST = 42

_test_struct_type = ((np.float32, (2,)), np.float64)


class SumPlusOneFactory(aggregators.UnweightedAggregationFactory):
  """TFF's aggregator_test_utils.SumPlusOneFactory: sum + 1 (each element),
  state counts the calls from 0, measurements are always 42."""

  def create(self, value_type):
    value_type = fedjit.to_type(value_type)

    @fedjit.jax_computation
    def zero():
      return jnp.int32(0)  # spelling: federated_value(0) -> an int32 jax computation

    @fedjit.jax_computation
    def constant():
      return jnp.int32(M_CONST)

    @fedjit.jax_computation(np.int32)
    def increment(x):
      return x + 1

    @fedjit.jax_computation(value_type)
    def plus_one(x):
      return jax.tree_util.tree_map(lambda y: y + 1, x)  # spelling: tf.nest -> tree_map

    @fedjit.federated_computation
    def init_fn():
      return fedjit.federated_value(zero(), SERVER)

    @fedjit.federated_computation(init_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      state = fedjit.federated_map(increment, state)
      result = fedjit.federated_map(plus_one, fedjit.federated_sum(value))
      measurements = fedjit.federated_value(constant(), SERVER)
      return templates.MeasuredProcessOutput(state, result, measurements)

    return templates.AggregationProcess(init_fn, next_fn)


def _wide(*specs) -> bool:
  return any(l.dtype.itemsize == 8 for s in specs for l in _leaves(fedjit.to_type(s)))


def _leaves(t):
  return [t] if isinstance(t, TensorType) else [l for e in t.types() for l in _leaves(e)]


def _x64(*specs):
  """JAX's 64-bit mode when a type holds 64-bit values."""
  return jax.enable_x64(True) if _wide(*specs) else contextlib.nullcontext()


def _equivalent(a, b) -> bool:
  return a.is_assignable_from(b) and b.is_assignable_from(a)


def _measured_output(state, result, measurements):
  return StructType([("state", state), ("result", result), ("measurements", measurements)])


WEIGHTED_CASES = [
    ("float_value_float32_weight", np.float32, np.float32),
    ("struct_value_float32_weight", _test_struct_type, np.float32),
    ("float_value_float64_weight", np.float32, np.float64),
    ("struct_value_float64_weight", _test_struct_type, np.float64),
    ("float_value_int32_weight", np.float32, np.int32),
    ("struct_value_int32_weight", _test_struct_type, np.int32),
    ("float_value_int64_weight", np.float32, np.int64),
    ("struct_value_int64_weight", _test_struct_type, np.int64),
]
UNWEIGHTED_CASES = [("float_value", np.float32), ("struct_value", _test_struct_type)]


def _ids(cases):
  return [c[0] for c in cases]


def _check_weighted_types(factory_, value_type, weight_type, state_member, measurements_member):
  value_type = fedjit.to_type(value_type)
  weight_type = fedjit.to_type(weight_type)
  assert isinstance(factory_, aggregators.WeightedAggregationFactory)
  with _x64(value_type, weight_type):
    process = factory_.create(value_type, weight_type)
  assert isinstance(process, templates.AggregationProcess)

  param_value_type = FederatedType(value_type, CLIENTS)
  result_value_type = FederatedType(value_type, SERVER)
  expected_state_type = FederatedType(state_member, SERVER)
  expected_measurements_type = FederatedType(measurements_member, SERVER)
  expected_initialize_type = FunctionType(parameter=None, result=expected_state_type)
  assert _equivalent(process.initialize.type_signature, expected_initialize_type)

  expected_parameter = StructType([("state", expected_state_type),
                                   ("value", param_value_type),
                                   ("weight", FederatedType(weight_type, CLIENTS))])
  expected_next_type = FunctionType(
      parameter=expected_parameter,
      result=_measured_output(expected_state_type, result_value_type,
                              expected_measurements_type))
  assert _equivalent(process.next.type_signature, expected_next_type)


def _check_unweighted_types(factory_, value_type, state_member, measurements_member):
  value_type = fedjit.to_type(value_type)
  assert isinstance(factory_, aggregators.UnweightedAggregationFactory)
  with _x64(value_type):
    process = factory_.create(value_type)
  assert isinstance(process, templates.AggregationProcess)

  param_value_type = FederatedType(value_type, CLIENTS)
  result_value_type = FederatedType(value_type, SERVER)
  expected_state_type = FederatedType(state_member, SERVER)
  expected_measurements_type = FederatedType(measurements_member, SERVER)
  expected_initialize_type = FunctionType(parameter=None, result=expected_state_type)
  assert _equivalent(process.initialize.type_signature, expected_initialize_type)

  expected_next_type = FunctionType(
      parameter=StructType([("state", expected_state_type), ("value", param_value_type)]),
      result=_measured_output(expected_state_type, result_value_type,
                              expected_measurements_type))
  assert _equivalent(process.next.type_signature, expected_next_type)


# ----------------------------------------------------- MeanFactoryComputationTest


@pytest.mark.parametrize("name, value_type, weight_type", WEIGHTED_CASES,
                         ids=_ids(WEIGHTED_CASES))
def test_type_properties(name, value_type, weight_type):
  _check_weighted_types(
      MeanFactory(), value_type, weight_type,
      collections.OrderedDict(value_sum_process=(), weight_sum_process=()),
      collections.OrderedDict(mean_value=(), mean_weight=()))


@pytest.mark.parametrize("name, value_type", UNWEIGHTED_CASES, ids=_ids(UNWEIGHTED_CASES))
def test_type_properties_unweighted(name, value_type):
  _check_unweighted_types(UnweightedMeanFactory(), value_type, ((), ()),
                          collections.OrderedDict(mean_value=(), mean_count=()))


@pytest.mark.parametrize("name, value_type, weight_type", WEIGHTED_CASES,
                         ids=_ids(WEIGHTED_CASES))
def test_type_properties_with_inner_factory(name, value_type, weight_type):
  sum_factory = SumPlusOneFactory()
  _check_weighted_types(
      MeanFactory(value_sum_factory=sum_factory, weight_sum_factory=sum_factory),
      value_type, weight_type,
      collections.OrderedDict(value_sum_process=np.int32, weight_sum_process=np.int32),
      collections.OrderedDict(mean_value=np.int32, mean_weight=np.int32))


@pytest.mark.parametrize("name, value_type", UNWEIGHTED_CASES, ids=_ids(UNWEIGHTED_CASES))
def test_type_properties_with_inner_factory_unweighted(name, value_type):
  sum_factory = SumPlusOneFactory()
  _check_unweighted_types(
      UnweightedMeanFactory(value_sum_factory=sum_factory, count_sum_factory=sum_factory),
      value_type, ((np.int32, np.int32)),
      collections.OrderedDict(mean_value=np.int32, mean_count=np.int32))


@pytest.mark.parametrize("wrong_type", [
    FederatedType(np.float32, SERVER),
    FunctionType(None, ()),
    fedjit.SequenceType(np.float32),
], ids=["federated_type", "function_type", "sequence_type"])
def test_incorrect_create_type_raises(wrong_type):
  factory_ = MeanFactory()
  correct_type = TensorType(np.float32)
  with pytest.raises(TypeError):
    factory_.create(wrong_type, correct_type)
  with pytest.raises(TypeError):
    factory_.create(correct_type, wrong_type)

  factory_ = UnweightedMeanFactory()
  with pytest.raises(TypeError):
    factory_.create(wrong_type)


# ------------------------------------------------------ MeanFactoryExecutionTest


def _assert_all_close(expected, actual):
  for e, a in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(actual),
                  strict=True):
    np.testing.assert_allclose(a, e, rtol=1e-6)


def test_scalar_value():
  factory_ = MeanFactory()
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)

  process = factory_.create(value_type, weight_type)
  expected_state = collections.OrderedDict(value_sum_process=(), weight_sum_process=())
  expected_measurements = collections.OrderedDict(mean_value=(), mean_weight=())

  state = process.initialize()
  assert state == expected_state

  client_data = [1.0, 2.0, 3.0]
  weights = [3.0, 2.0, 1.0]
  output = process.next(state, client_data, weights)
  _assert_all_close(10.0 / 6.0, output.result)

  assert output.state == expected_state
  assert output.measurements == expected_measurements


def test_scalar_value_unweighted():
  factory_ = UnweightedMeanFactory()
  value_type = TensorType(np.float32)

  process = factory_.create(value_type)
  expected_state = ((), ())
  expected_measurements = collections.OrderedDict(mean_value=(), mean_count=())

  state = process.initialize()
  assert state == expected_state

  client_data = [1.0, 2.0, 3.0]
  output = process.next(state, client_data)
  _assert_all_close(2.0, output.result)

  assert output.state == expected_state
  assert output.measurements == expected_measurements


def test_structure_value():
  factory_ = MeanFactory()
  value_type = fedjit.to_type(_test_struct_type)
  weight_type = TensorType(np.float32)
  with jax.enable_x64(True):
    process = factory_.create(value_type, weight_type)
    expected_state = collections.OrderedDict(value_sum_process=(), weight_sum_process=())
    expected_measurements = collections.OrderedDict(mean_value=(), mean_weight=())

    state = process.initialize()
    assert state == expected_state

    client_data = [((1.0, 2.0), 3.0), ((2.0, 5.0), 4.0), ((3.0, 0.0), 5.0)]
    weights = [3.0, 2.0, 1.0]
    output = process.next(state, client_data, weights)
  assert output.state == expected_state
  _assert_all_close(((10.0 / 6.0, 16.0 / 6.0), 22.0 / 6.0),
                    ((output.result[0][0], output.result[0][1]), output.result[1]))
  assert output.measurements == expected_measurements


def test_structure_value_unweighted():
  factory_ = UnweightedMeanFactory()
  value_type = fedjit.to_type(_test_struct_type)
  with jax.enable_x64(True):
    process = factory_.create(value_type)
    expected_state = ((), ())
    expected_measurements = collections.OrderedDict(mean_value=(), mean_count=())

    state = process.initialize()
    assert state == expected_state

    client_data = [((1.0, 2.0), 3.0), ((2.0, 5.0), 4.0), ((3.0, 0.0), 5.0)]
    output = process.next(state, client_data)

  assert output.state == expected_state
  _assert_all_close(((2.0, 7 / 3), 4.0),
                    ((output.result[0][0], output.result[0][1]), output.result[1]))
  assert output.measurements == expected_measurements


def test_weight_arg():
  factory_ = MeanFactory()
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)
  process = factory_.create(value_type, weight_type)

  state = process.initialize()
  client_data = [1.0, 2.0, 3.0]
  weights = [1.0, 1.0, 1.0]
  assert process.next(state, client_data, weights).result == 2.0
  weights = [0.1, 0.1, 0.1]
  assert process.next(state, client_data, weights).result == 2.0
  weights = [6.0, 3.0, 1.0]
  assert process.next(state, client_data, weights).result == 1.5


def test_weight_arg_all_zeros_nan_division():
  factory_ = MeanFactory(no_nan_division=False)
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)
  process = factory_.create(value_type, weight_type)

  state = process.initialize()
  client_data = [1.0, 2.0, 3.0]
  weights = [0.0, 0.0, 0.0]

  # Division by zero resulting in NaN/Inf *should* occur.
  assert not math.isfinite(process.next(state, client_data, weights).result)


def test_weight_arg_all_zeros_no_nan_division():
  factory_ = MeanFactory(no_nan_division=True)
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)
  process = factory_.create(value_type, weight_type)

  state = process.initialize()
  client_data = [1.0, 2.0, 3.0]
  weights = [0.0, 0.0, 0.0]

  # Division by zero resulting in NaN/Inf *should not* occur.
  assert process.next(state, client_data, weights).result == 0.0


def test_inner_value_sum_factory():
  sum_factory = SumPlusOneFactory()
  factory_ = MeanFactory(value_sum_factory=sum_factory)
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)
  process = factory_.create(value_type, weight_type)

  state = process.initialize()
  assert state == collections.OrderedDict(value_sum_process=0, weight_sum_process=())

  # Weighted values will be summed to 11.0.
  client_data = [1.0, 2.0, 3.0]
  weights = [3.0, 2.0, 1.0]

  output = process.next(state, client_data, weights)
  assert output.state == collections.OrderedDict(value_sum_process=1, weight_sum_process=())
  _assert_all_close(11 / 6, output.result)
  assert output.measurements == collections.OrderedDict(mean_value=M_CONST, mean_weight=())


def test_inner_value_sum_factory_unweighted():
  sum_factory = SumPlusOneFactory()
  factory_ = UnweightedMeanFactory(value_sum_factory=sum_factory,
                                   count_sum_factory=sum_factory)
  value_type = TensorType(np.float32)
  process = factory_.create(value_type)

  state = process.initialize()
  assert state == (0, 0)

  # Values will be summed to 7.0.
  client_data = [1.0, 2.0, 3.0]

  output = process.next(state, client_data)
  assert output.state == (1, 1)
  _assert_all_close(7 / 4, output.result)
  assert output.measurements == collections.OrderedDict(mean_value=M_CONST,
                                                        mean_count=M_CONST)


def test_inner_weight_sum_factory():
  sum_factory = SumPlusOneFactory()
  factory_ = MeanFactory(weight_sum_factory=sum_factory)
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)
  process = factory_.create(value_type, weight_type)

  state = process.initialize()
  assert state == collections.OrderedDict(value_sum_process=(), weight_sum_process=0)

  # Weights will be summed to 7.0.
  client_data = [1.0, 2.0, 3.0]
  weights = [3.0, 2.0, 1.0]

  output = process.next(state, client_data, weights)
  assert output.state == collections.OrderedDict(value_sum_process=(), weight_sum_process=1)
  _assert_all_close(10 / 7, output.result)
  assert output.measurements == collections.OrderedDict(mean_value=(), mean_weight=M_CONST)


def test_inner_value_and_weight_sum_factory():
  sum_factory = SumPlusOneFactory()
  factory_ = MeanFactory(value_sum_factory=sum_factory, weight_sum_factory=sum_factory)
  value_type = TensorType(np.float32)
  weight_type = TensorType(np.float32)
  process = factory_.create(value_type, weight_type)

  state = process.initialize()
  assert state == collections.OrderedDict(value_sum_process=0, weight_sum_process=0)

  # Weighted values will be summed to 11.0 and weights will be summed to 7.0.
  client_data = [1.0, 2.0, 3.0]
  weights = [3.0, 2.0, 1.0]

  output = process.next(state, client_data, weights)
  assert output.state == collections.OrderedDict(value_sum_process=1, weight_sum_process=1)
  _assert_all_close(11 / 7, output.result)
  assert output.measurements == collections.OrderedDict(mean_value=M_CONST,
                                                        mean_weight=M_CONST)
