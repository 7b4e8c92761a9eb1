"""IterativeProcess checks its types when it is built."""

import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType


@fedjit.jax_computation
def zero():
  return np.float32(0.0)


@fedjit.federated_computation
def initialize_fn():
  return fedjit.federated_value(zero(), SERVER)


@fedjit.jax_computation(np.float32, np.float32)
def add(a, b):
  return a + b


@fedjit.federated_computation(FederatedType(np.float32, SERVER),
                              FederatedType(np.float32, CLIENTS))
def next_fn(total, values):
  return fedjit.federated_map(add, (total, fedjit.federated_sum(values)))


def test_running_sum_process(any_backend):
  process = fedjit.templates.IterativeProcess(initialize_fn, next_fn)
  assert str(process.initialize.type_signature) == "( -> float32@SERVER)"
  assert str(process.next.type_signature) == (
      "(<total=float32@SERVER,values={float32}@CLIENTS> -> float32@SERVER)")
  state = process.initialize()
  for values in ([1.0, 2.0], [3.0, 4.0, 5.0]):
    state = process.next(state, values)
  assert state == np.float32(15.0)


def test_state_type_mismatch_is_caught_when_built():
  @fedjit.federated_computation(FederatedType(np.int32, SERVER))
  def wrong_next(state):
    return state
  with pytest.raises(fedjit.FederatedTypeError) as e:
    fedjit.templates.IterativeProcess(initialize_fn, wrong_next)
  assert "int32@SERVER" in str(e.value) and "float32@SERVER" in str(e.value)


def test_next_must_return_the_state():
  @fedjit.federated_computation(FederatedType(np.float32, SERVER))
  def returns_clients(state):
    return fedjit.federated_broadcast(state)
  with pytest.raises(fedjit.FederatedTypeError, match="must return the new state"):
    fedjit.templates.IterativeProcess(initialize_fn, returns_clients)


def test_initialize_must_take_no_arguments():
  with pytest.raises(fedjit.FederatedTypeError, match="no arguments"):
    fedjit.templates.IterativeProcess(next_fn, next_fn)
  with pytest.raises(TypeError, match="fedjit.Computation"):
    fedjit.templates.IterativeProcess(lambda: 0, next_fn)
