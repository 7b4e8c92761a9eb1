"""Port of TFF's federated_computation wrapper tests.

Source: google-parfait/federated-language,
federated_language/federated_context/federated_computation_test.py.

Spelling: `federated_computation.federated_computation` -> `fedjit.federated_computation`;
`computation_types.X` -> `fedjit.X`; `computation_impl.ConcreteComputation` ->
`fedjit.FederatedComputation`; `computation_wrapper.ComputationReturnedNoneError`
-> `fedjit.ComputationReturnedNoneError` (a ValueError, as in TFF); TFF's
context stack -> fedjit's current trace (`fedjit.core._ir.current_builder()`,
None outside a federated computation).

Left out: the `to_building_block()` golden strings of
`test_federated_computation_wrapper` and `test_empty_tuple_arg` (TFF's
building-block IR; fedjit's graph is another IR). Added to the first case:
running `foo` on both backends with a jax computation for `f`, which TFF's
test does not do (the expected value, inc(inc(3)) = 5, is worked by hand).
"""

from __future__ import annotations

import numpy as np
import pytest

import fedjit
from fedjit.core import _ir


def test_federated_computation_wrapper(backend):

  @fedjit.federated_computation((fedjit.FunctionType(np.int32, np.int32), np.int32))
  def foo(f, x):
    return f(f(x))

  assert isinstance(foo, fedjit.FederatedComputation)
  assert str(foo.type_signature) == "(<f=(int32 -> int32),x=int32> -> int32)"

  @fedjit.jax_computation(np.int32)
  def inc(x):
    return x + 1

  assert int(foo(inc, 3)) == 5


def test_stackframes_in_errors():

  with pytest.raises(RuntimeError):

    @fedjit.federated_computation
    def _():
      raise RuntimeError()


def test_empty_tuple_arg():

  @fedjit.federated_computation(fedjit.StructType([]))
  def foo(x):
    return x

  assert isinstance(foo, fedjit.FederatedComputation)
  assert str(foo.type_signature) == "(<> -> <>)"


def test_stack_resets_on_none_returned():
  assert _ir.current_builder() is None

  with pytest.raises(fedjit.ComputationReturnedNoneError):

    @fedjit.federated_computation()
    def _():
      pass

  assert _ir.current_builder() is None
  assert issubclass(fedjit.ComputationReturnedNoneError, ValueError)
