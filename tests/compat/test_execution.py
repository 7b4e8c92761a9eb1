"""Port of TFF's execution tests: secure sums, and running computations and
every intrinsic end to end. Each case runs on the reference and the
vectorized backend.

Sources:
* google-parfait/tensorflow-federated,
  tensorflow_federated/python/core/backends/test/execution_contexts_test.py
  (SecureModularSumTest, SecureSumBitwidthTest, SecureSumMaxValueTest);
* google-parfait/federated-language,
  examples/executor/execution_context_test.py.

Spelling: `federated_language.X` -> `fedjit.X`;
`mapreduce_intrinsics.federated_secure_modular_sum` ->
`fedjit.federated_secure_modular_sum`; `set_sync_test_cpp_execution_context()`
/ `with_context(ExecutionContext)` -> `fedjit.backend(...)` (reference or
vectorized); `await fn(...)` -> `fn(...)` (fedjit runs synchronously);
`python_computation.python_computation(params, result)` ->
`fedjit.jax_computation(*params)` (the result type is inferred from the
body); `grpc.RpcError` (a client's value over max_input) -> `ValueError`;
`_fn([None, None, None])` (a CLIENTS argument only there to give the number
of clients) -> `_fn([0, 0, 0])`, since fedjit's int32 values cannot be None.

Left out: `test_compiler_called_once_for_comp` (a mock of TFF's compiler);
`test_invoke_raises_value_error_with_data/_tensorflow/_xla` (computations
built from TFF protos); the `_assert_computation_contains` checks of
building-block kinds (Block, Call, Lambda, ... of TFF's IR) -- the results
of those cases are checked.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
from conftest import use_third_backend

CLIENTS = fedjit.CLIENTS
SERVER = fedjit.SERVER

_CLIENTS_INT = fedjit.FederatedType(np.int32, CLIENTS)
_CLIENTS_INT_LIST = fedjit.FederatedType([np.int32, np.int32], CLIENTS)


use_third_backend()  # registers "logging", a backend written only against the protocol


@pytest.fixture(params=["reference", "vectorized", "logging"])
def backend(request):
  """Both backends of conftest.py, and the third backend of
  tests/core/test_third_backend.py."""
  with fedjit.backend(request.param):
    yield request.param


@pytest.fixture(autouse=True)
def _on_each_backend(backend):
  """Every test here runs on each backend of the `backend` fixture above."""
  yield backend


def _assert_structure_equal(actual, expected):
  if isinstance(actual, (tuple, list)) and isinstance(expected, (tuple, list)):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  else:
    assert actual == expected


# ------------------------------------------------------ SecureModularSumTest


@pytest.mark.parametrize("arg,expected_result,tff_type", [
    ([1], 1, _CLIENTS_INT),
    ([1, 2], 3, _CLIENTS_INT),
    ([1, 2, 10], 3, _CLIENTS_INT),
    ([x * 5 for x in range(5)], 0, _CLIENTS_INT),
    ([([1, 2], 3), ([4, 5], 6)], (np.array([0, 2], dtype=np.int32), 4),
     fedjit.FederatedType(((np.int32, [2]), np.int32), CLIENTS)),
], ids=["one_client_not_divisible", "two_clients_none_divisible",
        "three_clients_one_divisible", "all_clients_divisible_by_modulus",
        "nonscalar_struct_arg"])
def test_executes_computation_with_modular_secure_sum_integer_modulus(
    arg, expected_result, tff_type):
  modulus = 5

  @fedjit.federated_computation(tff_type)
  def modular_sum_by_five(arg):
    return fedjit.federated_secure_modular_sum(arg, modulus)

  actual_result = modular_sum_by_five(arg)
  _assert_structure_equal(actual_result, expected_result)


@pytest.mark.parametrize("arg,expected_result,tff_type", [
    ([[1, 2]], [1, 2], _CLIENTS_INT_LIST),
    ([[1, 2], [3, 4]], [4, 6], _CLIENTS_INT_LIST),
    ([[1, 2], [3, 4], [10, 14]], [4, 6], _CLIENTS_INT_LIST),
    ([[1, 2], [3, 4], [10, 15]], [4, 0], _CLIENTS_INT_LIST),
], ids=["one_client_not_divisible", "two_clients_none_divisible",
        "three_clients_one_divisible", "two_clients_one_partially_divisible"])
def test_executes_computation_with_modular_secure_sum_struct_modulus(
    arg, expected_result, tff_type):
  modulus = [5, 7]

  @fedjit.federated_computation(tff_type)
  def modular_sum_by_five(arg):
    return fedjit.federated_secure_modular_sum(arg, modulus)

  assert expected_result == modular_sum_by_five(arg)


# ----------------------------------------------------- SecureSumBitwidthTest


@pytest.mark.parametrize("arg", [[1], [1, 2, 10], [x * 5 for x in range(5)]],
                         ids=["one_client", "three_clients", "five_clients"])
def test_executes_computation_with_bitwidth_secure_sum_large_bitwidth(arg):
  bitwidth = 32

  expected_result = sum(arg)

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def sum_with_bitwidth(arg):
    return fedjit.federated_secure_sum_bitwidth(arg, bitwidth)

  assert expected_result == sum_with_bitwidth(arg)


_STRUCTURE_CASES = [
    ([[1, 2], [3, 4]], [4, 6], fedjit.FederatedType([np.int32, np.int32], CLIENTS)),
    ([[np.ones(shape=[10], dtype=np.int32), 2], [np.ones(shape=[10], dtype=np.int32), 4]],
     [2 * np.ones(shape=[10], dtype=np.int32), 6],
     fedjit.FederatedType([fedjit.TensorType(dtype=np.int32, shape=[10]), np.int32],
                          CLIENTS)),
]
_STRUCTURE_IDS = ["two_clients_scalar_tensors", "two_clients_nonscalar_tensors"]


@pytest.mark.parametrize("arg,expected_result,tff_type", _STRUCTURE_CASES,
                         ids=_STRUCTURE_IDS)
def test_executes_computation_with_bitwidth_argument_structure(arg, expected_result,
                                                               tff_type):
  bitwidth = 32

  @fedjit.federated_computation(tff_type)
  def sum_with_bitwidth(arg):
    return fedjit.federated_secure_sum_bitwidth(arg, bitwidth)

  _assert_structure_equal(sum_with_bitwidth(arg), expected_result)


# ---------------------------------------------------- SecureSumMaxValueTest


def test_raises_with_arguments_over_max_value():
  max_value = 1

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def secure_sum(arg):
    return fedjit.federated_secure_sum(arg, max_value)

  with pytest.raises(ValueError):  # spelling: grpc.RpcError -> ValueError
    secure_sum([2, 4])


@pytest.mark.parametrize("arg", [[1], [1, 2, 10], [x * 5 for x in range(5)]],
                         ids=["one_client", "three_clients", "five_clients"])
def test_executes_computation_with_secure_sum_under_max_values(arg):
  max_value = 30

  expected_result = sum(arg)

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def secure_sum(arg):
    return fedjit.federated_secure_sum(arg, max_value)

  assert expected_result == secure_sum(arg)


@pytest.mark.parametrize("arg,expected_result,tff_type", _STRUCTURE_CASES,
                         ids=_STRUCTURE_IDS)
def test_executes_computation_with_max_value_argument_structure(arg, expected_result,
                                                                tff_type):
  max_value = 100

  @fedjit.federated_computation(tff_type)
  def secure_sum(arg):
    return fedjit.federated_secure_sum(arg, max_value)

  _assert_structure_equal(secure_sum(arg), expected_result)


# ------------------------------------ ExecutionContextPythonComputationTest
# spelling: python_computation(params, result) -> jax_computation(*params)


def test_invoke_returns_result_with_args_none():

  @fedjit.jax_computation
  def _fn():
    return np.int32(1)

  assert _fn() == 1


def test_invoke_returns_result_with_args_empty():

  @fedjit.jax_computation()
  def _fn():
    return np.int32(1)

  assert _fn() == 1


def test_invoke_returns_result_with_args_one_int():

  @fedjit.jax_computation(np.int32)
  def _fn(x):
    return x + 1

  assert _fn(1) == 2


def test_invoke_returns_result_with_args_one_list():

  @fedjit.jax_computation([np.int32, np.float32])
  def _fn(x):
    return [x[0] + 1, x[1] + 1.0]

  assert _fn([1, 2.0]) == [2, 3.0]


def test_invoke_returns_result_with_args_one_dict():

  @fedjit.jax_computation([("a", np.int32), ("b", np.float32)])
  def _fn(x):
    return {"a": x["a"] + 1, "b": x["b"] + 1.0}

  assert _fn({"a": 1, "b": 2.0}) == {"a": 2, "b": 3.0}


def test_invoke_returns_result_with_args_one_named_tuple():

  class _Foo(NamedTuple):
    a: int
    b: float

  @fedjit.jax_computation(_Foo)
  def _fn(x):
    return _Foo(x.a + 1, x.b + 1.0)

  assert _fn(_Foo(1, 2.0)) == _Foo(2, 3.0)


def test_invoke_returns_result_with_args_multiple_unnamed():

  @fedjit.jax_computation(np.int32, np.float32)
  def _fn(x, y):
    return [x + 1, y + 1.0]

  assert _fn(1, 2.0) == [2, 3.0]


def test_invoke_returns_result_with_args_multiple_named():

  @fedjit.jax_computation({"x": np.int32, "y": np.float32})
  def _fn(x, y):
    return [x + 1, y + 1.0]

  assert _fn(1, 2.0) == [2, 3.0]


# ---------------------------------- ExecutionContextFederatedConstructsTest


@pytest.mark.parametrize("tff_case", ["block", "call_arg", "call_no_arg"])
def test_invoke_returns_result_call(tff_case):
  # TFF's test_invoke_returns_result_block, _call_arg and _call_no_arg have
  # this same body (they check for different building blocks).

  @fedjit.jax_computation
  def _value():
    return np.int32(1)

  @fedjit.federated_computation()
  def _fn():
    return _value()

  assert _fn() == 1


@pytest.mark.parametrize("tff_case", ["lambda", "reference"])
def test_invoke_returns_result_lambda_reference(tff_case):
  # TFF's test_invoke_returns_result_lambda and _reference (the same body).

  @fedjit.federated_computation(np.int32)
  def _fn(x):
    return x

  assert _fn(1) == 1


def test_invoke_returns_result_literal():

  @fedjit.federated_computation()
  def _fn():
    return 1

  assert _fn() == 1


def test_invoke_returns_result_selection_list():

  @fedjit.federated_computation([np.int32, np.float32])
  def _fn(x):
    return x[0]

  assert _fn([1, 2.0]) == 1


def test_invoke_returns_result_selection_dict():

  @fedjit.federated_computation([("a", np.int32), ("b", np.float32)])
  def _fn(x):
    return x["a"]

  assert _fn({"a": 1, "b": 2.0}) == 1


def test_invoke_returns_result_selection_named_tuple():

  class _Foo(NamedTuple):
    a: int
    b: float

  @fedjit.federated_computation(_Foo)
  def _fn(x):
    return x["a"]

  assert _fn(_Foo(1, 2.0)) == 1


def test_invoke_returns_result_struct():

  @fedjit.federated_computation(np.int32)
  def _fn(x):
    return [x, x]

  assert _fn(1) == [1, 1]


# ---------------------------------- ExecutionContextFederatedIntrinsicsTest


def test_invoke_returns_result_federated_aggregate():

  class _Foo(NamedTuple):
    sum: float
    count: int

  foo_type = fedjit.to_type(_Foo)

  @fedjit.jax_computation
  def _zero() -> _Foo:
    return _Foo(sum=np.float32(0.0), count=np.int32(0))

  @fedjit.jax_computation(foo_type, np.float32)
  def _accumulate(a: _Foo, value: float) -> _Foo:
    return _Foo(sum=a.sum + value, count=a.count + 1)

  @fedjit.jax_computation(foo_type, foo_type)
  def _merge(a: _Foo, b: _Foo) -> _Foo:
    return _Foo(sum=a.sum + b.sum, count=a.count + b.count)

  @fedjit.jax_computation(foo_type)
  def _report(a: _Foo) -> float:
    return a.sum / a.count

  @fedjit.federated_computation(fedjit.FederatedType(np.float32, CLIENTS))
  def _fn(x):
    zero = _zero()
    return fedjit.federated_aggregate(x, zero, _accumulate, _merge, _report)

  assert _fn([1.0, 2.0, 3.0]) == 2.0


def test_invoke_returns_result_federated_broadcast():

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, SERVER))
  def _fn(x):
    return fedjit.federated_broadcast(x)

  assert _fn(1) == 1


def test_invoke_returns_result_federated_eval_at_clients():

  @fedjit.jax_computation
  def _value():
    return [jnp.int32(1), jnp.int32(2), jnp.int32(3)]

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def _fn(x):
    del x  # Unused.
    return fedjit.federated_eval(_value, CLIENTS)

  # NOTE: The x is used by the context to infer the cardinality of values
  # placed at `CLIENTS`.
  result = _fn([0, 0, 0])  # spelling: [None, None, None] -> [0, 0, 0]
  assert result == [[1, 2, 3], [1, 2, 3], [1, 2, 3]]


def test_invoke_returns_result_federated_eval_at_server():

  @fedjit.jax_computation
  def _value():
    return [jnp.int32(1), jnp.int32(2), jnp.int32(3)]

  @fedjit.federated_computation()
  def _fn():
    return fedjit.federated_eval(_value, SERVER)

  assert _fn() == [1, 2, 3]


def test_invoke_returns_result_federated_map():

  @fedjit.jax_computation(np.int32)
  def _add_one(x):
    return x + 1

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def _fn(x):
    return fedjit.federated_map(_add_one, x)

  assert _fn([1, 2, 3]) == [2, 3, 4]


def test_invoke_returns_result_federated_max():

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def _fn(x):
    return fedjit.federated_max(x)

  assert _fn([1, 2, 3]) == 3


def test_invoke_returns_result_federated_mean():

  @fedjit.federated_computation(fedjit.FederatedType(np.float32, CLIENTS))
  def _fn(x):
    return fedjit.federated_mean(x)

  assert _fn([1.0, 2.0, 3.0]) == 2.0


def test_invoke_returns_result_federated_min():

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def _fn(x):
    return fedjit.federated_min(x)

  assert _fn([1, 2, 3]) == 1


def test_invoke_returns_result_federated_sum():

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, CLIENTS))
  def _fn(x):
    return fedjit.federated_sum(x)

  assert _fn([1, 2, 3]) == 6


def test_invoke_returns_result_federated_value_at_clients():

  @fedjit.federated_computation()
  def _fn():
    return fedjit.federated_value([1, 2, 3], CLIENTS)

  assert _fn() == [1, 2, 3]


def test_invoke_returns_result_federated_value_at_server():

  @fedjit.federated_computation()
  def _fn():
    return fedjit.federated_value([1, 2, 3], SERVER)

  assert _fn() == [1, 2, 3]


def test_invoke_returns_result_federated_zip_at_clients():

  @fedjit.federated_computation([
      fedjit.FederatedType(np.int32, CLIENTS),
      fedjit.FederatedType(np.int32, CLIENTS),
  ])
  def _fn(x):
    return fedjit.federated_zip(x)

  assert _fn([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]


def test_invoke_returns_result_federated_zip_at_server():

  @fedjit.federated_computation([
      fedjit.FederatedType([np.int32, np.int32, np.int32], SERVER),
      fedjit.FederatedType([np.int32, np.int32, np.int32], SERVER),
  ])
  def _fn(x):
    return fedjit.federated_zip(x)

  assert _fn([[1, 2, 3], [4, 5, 6]]) == [[1, 2, 3], [4, 5, 6]]
