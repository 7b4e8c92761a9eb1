"""Port of TFF's IterativeProcess tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/core/templates/iterative_process_test.py.

Spelling: `federated_language.X` / `tff.templates.X` -> `fedjit.X` /
`fedjit.templates.X`; `errors.TemplateXError` -> `fedjit.templates.TemplateXError`
(still `TypeError`s); `StructWithPythonType([...], list)` ->
`StructType([...], container=list)`; absltest asserts -> pytest.

Changed beyond spelling (marked at the case):
* test_construction_with_unknown_dimension_does_not_raise: a string state
  (np.str_) becomes float32: JAX arrays hold no strings.

Left out: none.
"""

import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, StructType, TensorType
from fedjit import templates
from fedjit.templates import IterativeProcess

_IterativeProcessConstructionError = (
    TypeError,
    templates.TemplateInitFnParamNotEmptyError,
    templates.TemplateStateNotAssignableError,
)


@fedjit.jax_computation
def _zero():
  return np.int32(0)


@fedjit.federated_computation()
def _initialize():
  return fedjit.federated_value(_zero(), SERVER)  # spelling: the 0 from a jax computation


@fedjit.federated_computation(FederatedType(np.int32, SERVER))
def _next(state):
  return state


# --------------------------------------------------------- IterativeProcessTest


def test_construction_does_not_raise():
  try:
    IterativeProcess(_initialize, _next)
  except _IterativeProcessConstructionError:
    pytest.fail("Could not construct a valid IterativeProcess.")


def test_construction_with_empty_state_does_not_raise():

  @fedjit.federated_computation()
  def _initialize_empty():
    return fedjit.federated_value((), SERVER)

  @fedjit.federated_computation(FederatedType((), SERVER))
  def _next_empty(state):
    return state

  try:
    IterativeProcess(_initialize_empty, _next_empty)
  except _IterativeProcessConstructionError:
    pytest.fail("Could not construct an IterativeProcess with empty state.")


def test_construction_with_unknown_dimension_does_not_raise():

  @fedjit.jax_computation
  def _empty_vector():
    return np.array([], np.float32)  # changed: np.str_ -> np.float32 (no strings in JAX)

  @fedjit.federated_computation()
  def _initialize_unknown():
    return fedjit.federated_value(_empty_vector(), SERVER)

  @fedjit.federated_computation(FederatedType(TensorType(np.float32, [None]), SERVER))
  def _next_unknown(state):
    return state

  try:
    IterativeProcess(_initialize_unknown, _next_unknown)
  except _IterativeProcessConstructionError:
    pytest.fail("Could not construct an IterativeProcess with parameter types "
                "with statically unknown shape.")


def test_init_not_tff_computation_raises():
  with pytest.raises(TypeError, match=r"Expected .*\.Computation, .*"):
    IterativeProcess(initialize_fn=lambda: 0, next_fn=_next)


def test_next_not_tff_computation_raises():
  with pytest.raises(TypeError, match=r"Expected .*\.Computation, .*"):
    IterativeProcess(initialize_fn=_initialize, next_fn=lambda state: state)


def test_init_param_not_empty_raises():

  @fedjit.federated_computation(FederatedType(np.int32, SERVER))
  def _initialize_arg(x):
    return x

  with pytest.raises(templates.TemplateInitFnParamNotEmptyError):
    IterativeProcess(_initialize_arg, _next)


def test_init_state_not_assignable():

  @fedjit.jax_computation
  def _zero_float():
    return np.float32(0.0)

  @fedjit.federated_computation()
  def _initialize_float():
    return fedjit.federated_value(_zero_float(), SERVER)

  with pytest.raises(templates.TemplateStateNotAssignableError):
    IterativeProcess(_initialize_float, _next)


def test_next_state_not_assignable():

  @fedjit.federated_computation(FederatedType(np.float32, SERVER))
  def _next_float(state):
    return state

  with pytest.raises(templates.TemplateStateNotAssignableError):
    IterativeProcess(_initialize, _next_float)


def test_next_state_not_assignable_tuple_result():

  @fedjit.federated_computation(StructType([
      FederatedType(np.float32, SERVER),
      FederatedType(np.int32, CLIENTS),
  ]))
  def _next_float(state, value):
    return state, value

  with pytest.raises(templates.TemplateStateNotAssignableError):
    IterativeProcess(_initialize, _next_float)


# ------------------------------------------------------------ HasEmptyStateTest


def _create_test_process(state_type, state) -> IterativeProcess:
  @fedjit.jax_computation
  def _state():
    return state

  @fedjit.federated_computation
  def _init_process():
    if isinstance(state_type, FederatedType):
      return fedjit.federated_value(_state(), state_type.placement)
    else:
      return _state()

  @fedjit.federated_computation(state_type, np.int32)
  def _next_process(state, value):
    return state, value

  return IterativeProcess(_init_process, _next_process)


@pytest.mark.parametrize("state_type, state", [
    (StructType([]), ()),
    (StructType([], container=list), []),
    (StructType([[], [[]]]), ((), ((),))),
    (FederatedType([], SERVER), ()),
    (FederatedType([[], [[]]], SERVER), ((), ((),))),
], ids=["struct_tuple_empty", "struct_list_empty", "struct_nested_empty",
        "federated_struct_empty", "federated_struct_nested_empty"])
def test_is_stateful_returns_false(state_type, state):
  process = _create_test_process(state_type, state)
  assert not templates.is_stateful(process)


@pytest.mark.parametrize("state_type, state", [
    (TensorType(np.int32), 1),
    (StructType([np.int32]), (1,)),
    (StructType([np.int32], container=list), [1]),
    (StructType([[], [[np.int32]]]), ((), ((1,),))),
    (FederatedType(np.int32, SERVER), 1),
    (FederatedType([[], [[np.int32]]], SERVER), ((), ((1,),))),
], ids=["tensor", "struct_tuple_tensor", "struct_list_tensor", "struct_nested_tensor",
        "federated_tensor", "federated_struct_nested_tensor"])
def test_is_stateful_returns_true(state_type, state):
  process = _create_test_process(state_type, state)
  assert templates.is_stateful(process)
