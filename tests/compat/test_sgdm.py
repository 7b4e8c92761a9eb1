"""Port of TFF's SGD (with momentum) optimizer tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/sgdm_test.py

Spelling: `sgdm.build_sgdm` -> `fedjit.learning.optimizers.build_sgdm`;
`optimizer_base.Optimizer` -> `fedjit.learning.optimizers.Optimizer`;
`tf.TensorSpec` -> `jax.ShapeDtypeStruct`; `tf.constant` / `tf.zeros` /
`tf.ones` -> `np.array` / `np.zeros` / `np.ones` (float32, TF's default);
private constants (`sgdm._MOMENTUM_KEY`) -> their string values; private
attributes (`optimizer._lr`, `._momentum`, `._nesterov`) -> the public
`learning_rate`, `momentum`, `nesterov`; `tf.bfloat16` -> `jnp.bfloat16`;
`tf.float64` values run under `jax.enable_x64(True)` (JAX computes in 32 bits
otherwise); `tf.keras.optimizers.SGD` -> Keras 3's `keras.optimizers.SGD`;
TF asserts -> pytest / NumPy (see `_tff_optimizer_utils`).

Left out: `test_executes_with_indexed_slices` (`tf.IndexedSlices` has no JAX
counterpart: JAX gradients are dense arrays).
"""

import collections
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedjit.learning import optimizers
from fedjit.learning.optimizers import LEARNING_RATE_KEY

from ._tff_optimizer_utils import (EMPTY_TREES, SCALAR_SPEC, SPECS, assert_all_close,
                                   assert_optimizers_numerically_close,
                                   assert_trees_equal, match_keras_inputs,
                                   ones_like_spec, test_quadratic_problem)

build_sgdm = optimizers.build_sgdm  # spelling: sgdm.build_sgdm -> optimizers.build_sgdm


def test_state_structure():
  optimizer = build_sgdm(0.01)
  state = optimizer.initialize(SCALAR_SPEC)
  assert len(state) == 1
  assert LEARNING_RATE_KEY in state


@pytest.mark.parametrize("momentum_value", [None, 0.0], ids=["none", "zero"])
def test_get_hparams_momentum(momentum_value):
  optimizer = build_sgdm(0.01, momentum=momentum_value)
  state = optimizer.initialize(SCALAR_SPEC)
  hparams = optimizer.get_hparams(state)
  # Whether we specify None momentum or momentum 0.0, we shouldn't track the
  # extra accumulator state.
  assert "momentum" not in state  # spelling: sgdm._MOMENTUM_KEY -> "momentum"
  assert len(hparams) == 1


def test_state_structure_momentum():
  optimizer = build_sgdm(0.01, momentum=0.9)
  state = optimizer.initialize(SCALAR_SPEC)
  assert len(state) == 3
  assert LEARNING_RATE_KEY in state
  assert "momentum" in state
  assert "accumulator" in state  # spelling: sgdm._ACCUMULATOR_KEY -> "accumulator"


def _history(optimizer, steps=4):
  weights = np.array([1.0], np.float32)  # spelling: tf.constant -> np.array
  gradients = np.array([2.0], np.float32)
  history = [weights]
  state = optimizer.initialize(SCALAR_SPEC)
  for _ in range(steps):
    state, weights = optimizer.next(state, weights, gradients)
    history.append(weights)
  return history


def test_math_no_momentum():
  assert_all_close(_history(build_sgdm(0.01)), [[1.0], [0.98], [0.96], [0.94], [0.92]])


def test_math_momentum_0_5():
  assert_all_close(_history(build_sgdm(0.01, momentum=0.5)),
                   [[1.0], [0.98], [0.95], [0.915], [0.8775]])


def test_math_momentum_0_5_nesterov():
  assert_all_close(_history(build_sgdm(0.01, momentum=0.5, nesterov=True)),
                   [[1.0], [0.97], [0.935], [0.8975], [0.85875]])


@pytest.mark.parametrize("spec_name,momentum", [
    ("scalar_spec", None), ("struct_spec", None), ("nested_spec", None),
    ("scalar_spec", 0.5), ("struct_spec", 0.5), ("nested_spec", 0.5)])
def test_executes_with(spec_name, momentum):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = ones_like_spec(spec)
  optimizer = build_sgdm(0.01, momentum=momentum)

  state = optimizer.initialize(spec)
  for _ in range(10):
    state, weights = optimizer.next(state, weights, gradients)

  for w in jax.tree.leaves(weights):
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_skips_none_gradients(spec_name):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = jax.tree.map(lambda s: None, spec)
  optimizer = build_sgdm(learning_rate=0.01, momentum=0.5)

  state = optimizer.initialize(spec)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)

  assert_trees_equal(weights, updated_weights)
  assert_trees_equal(state, updated_state)


@pytest.mark.parametrize("structure", EMPTY_TREES.values(), ids=EMPTY_TREES.keys())
def test_behavior_on_empty_tree(structure):
  weights = gradients = structure
  optimizer = build_sgdm(0.01)

  state = optimizer.initialize(weights)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)

  assert updated_state == state
  assert updated_weights == weights


@pytest.mark.parametrize("momentum", [None, 0.5], ids=["no_momentum", "momentum_0_5"])
def test_convergence(momentum):
  init_w, fn, grad_fn = test_quadratic_problem()
  weights = init_w()
  assert fn(weights) > 5.0

  optimizer = build_sgdm(0.1, momentum=momentum)
  state = optimizer.initialize(jax.ShapeDtypeStruct(weights.shape, weights.dtype))

  for _ in range(100):
    gradients = grad_fn(weights)
    state, weights = optimizer.next(state, weights, gradients)
  assert fn(weights) < 0.005


@pytest.mark.parametrize("learning_rate,momentum,nesterov", [
    (0.1, None, False), (0.01, 0.9, False), (0.01, 0.9, True)],
    ids=["lr_0_1_m_none", "lr_0_01_m_0_9", "lr_0_01_m_0_9_nesterov"])
def test_build_sgdm(learning_rate, momentum, nesterov):
  optimizer = build_sgdm(learning_rate, momentum, nesterov)
  assert isinstance(optimizer, optimizers.Optimizer)
  assert learning_rate == optimizer.learning_rate  # spelling: ._lr -> .learning_rate
  assert momentum == optimizer.momentum  # spelling: ._momentum -> .momentum
  assert nesterov == optimizer.nesterov  # spelling: ._nesterov -> .nesterov


@pytest.mark.parametrize("learning_rate,momentum,nesterov", [
    (0.1, 0.0, False), (0.01, 0.9, False), (0.01, 0.9, True)],
    ids=["lr_0_1_m_0", "lr_0_01_m_0_9", "lr_0_01_m_0_9_nesterov"])
def test_match_keras(learning_rate, momentum, nesterov):
  initial_weight, gradients = match_keras_inputs()
  assert_optimizers_numerically_close(
      initial_weight, gradients,
      lambda: build_sgdm(learning_rate, momentum, nesterov=nesterov),
      # spelling: tf.keras.optimizers.SGD -> keras.optimizers.SGD (Keras 3)
      lambda keras: keras.optimizers.SGD(learning_rate, momentum, nesterov=nesterov))


@pytest.mark.parametrize("lr,momentum,nesterov,regex", [
    (-1.0, 0.9, False, "learning_rate"),
    (1.0, -0.9, False, "momentum"),
    (1.0, 1.1, False, "momentum"),
    (0.1, None, True, "Nesterov"),
], ids=["negative_lr", "negative_momentum", "momentum_larger_than_one",
        "nesterov_without_momentum"])
def test_invalid_args_raises(lr, momentum, nesterov, regex):
  with pytest.raises(ValueError, match=regex):
    build_sgdm(lr, momentum, nesterov)


def test_weights_gradients_mismatch_raises():
  optimizer = build_sgdm(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([1], np.float32), np.zeros([2], np.float32))


def test_initialize_next_weights_mismatch_raises():
  optimizer = build_sgdm(0.1, momentum=0.9)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([2], np.float32), np.zeros([2], np.float32))


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_get_hparams_returns_expected_result_without_momentum(spec_name):
  optimizer = build_sgdm(learning_rate=0.1, momentum=None)
  state = optimizer.initialize(SPECS[spec_name])
  expected_hparams = collections.OrderedDict(learning_rate=0.1)
  actual_hparams = optimizer.get_hparams(state)
  assert isinstance(actual_hparams, collections.OrderedDict)
  assert actual_hparams == expected_hparams


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_get_hparams_returns_expected_result_with_momentum(spec_name):
  optimizer = build_sgdm(learning_rate=0.1, momentum=0.9)
  state = optimizer.initialize(SPECS[spec_name])
  expected_hparams = collections.OrderedDict(learning_rate=0.1, momentum=0.9)
  actual_hparams = optimizer.get_hparams(state)
  assert isinstance(actual_hparams, collections.OrderedDict)
  assert actual_hparams == expected_hparams


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("momentum", [None, 0.0], ids=["momentum_none", "momentum_zero"])
def test_set_hparams_returns_expected_result_without_momentum(spec_name, momentum):
  # TFF's test_set_hparams_returns_expected_result_with_momentum_none and
  # _with_momentum_zero (identical bodies but for `momentum`).
  optimizer = build_sgdm(learning_rate=0.1, momentum=momentum)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = collections.OrderedDict(learning_rate=0.5)
  expected_state = copy.deepcopy(state)
  expected_state["learning_rate"] = 0.5
  updated_state = optimizer.set_hparams(state, hparams)
  assert isinstance(updated_state, collections.OrderedDict)
  assert_trees_equal(updated_state, expected_state)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_hparams_returns_expected_result_with_momentum(spec_name):
  optimizer = build_sgdm(learning_rate=0.1, momentum=0.9)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = collections.OrderedDict(learning_rate=0.5, momentum=0.8)
  expected_state = copy.deepcopy(state)
  for k, v in hparams.items():
    expected_state[k] = v
  updated_state = optimizer.set_hparams(state, hparams)
  assert isinstance(updated_state, collections.OrderedDict)
  assert_trees_equal(updated_state, expected_state)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("momentum", [None, 0.9], ids=["without_momentum", "with_momentum"])
def test_set_get_hparams_is_no_op(spec_name, momentum):
  # TFF's test_set_get_hparams_is_no_op_without_momentum and _with_momentum.
  optimizer = build_sgdm(learning_rate=0.1, momentum=momentum)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = optimizer.get_hparams(state)
  updated_state = optimizer.set_hparams(state, hparams)
  assert_trees_equal(state, updated_state)


def test_lr_with_different_weight_dtypes():
  with jax.enable_x64(True):  # spelling: tf.float64 values -> under jax.enable_x64
    weights = (
        np.array([0.1], dtype=np.float32),
        np.array(1.0, dtype=np.float64),
        np.array([10.0, 10.0], dtype=jnp.bfloat16),  # spelling: tf.bfloat16 -> jnp.bfloat16
    )
    sgdm_optimizer = build_sgdm(learning_rate=np.array(0.1, dtype=np.float32))
    state = sgdm_optimizer.initialize(weights)
    sgdm_optimizer.next(state, weights, jax.tree.map(np.zeros_like, weights))
