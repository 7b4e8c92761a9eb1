"""Port of TFF's Adagrad optimizer tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/adagrad_test.py

Spelling: `adagrad.build_adagrad` -> `fedjit.learning.optimizers.build_adagrad`;
`optimizer_base.Optimizer` -> `fedjit.learning.optimizers.Optimizer`;
`tf.TensorSpec` -> `jax.ShapeDtypeStruct`; `tf.constant` / `tf.zeros` ->
`np.array` / `np.zeros` (float32, TF's default); private constants
(`adagrad._EPSILON_KEY`, ...) -> their string values; `tf.bfloat16` ->
`jnp.bfloat16`; `tf.float64` values run under `jax.enable_x64(True)`;
`tf.keras.optimizers.Adagrad` -> Keras 3's `keras.optimizers.Adagrad`; TF
asserts -> pytest / NumPy (see `_tff_optimizer_utils`).

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

build_adagrad = optimizers.build_adagrad  # spelling: adagrad.build_adagrad -> optimizers.build_adagrad


def test_state_structure():
  optimizer = build_adagrad(0.01)
  state = optimizer.initialize(SCALAR_SPEC)
  assert len(state) == 3
  assert LEARNING_RATE_KEY in state
  assert "epsilon" in state  # spelling: adagrad._EPSILON_KEY -> "epsilon"
  assert "preconditioner" in state  # spelling: adagrad._PRECONDITIONER_KEY -> "preconditioner"


def test_math_no_momentum():
  weights = np.array([1.0], np.float32)  # spelling: tf.constant -> np.array
  gradients = np.array([2.0], np.float32)
  optimizer = build_adagrad(learning_rate=0.01, initial_preconditioner_value=0.0, epsilon=0.0)
  history = [weights]

  state = optimizer.initialize(SCALAR_SPEC)

  for _ in range(4):
    state, weights = optimizer.next(state, weights, gradients)
    history.append(weights)
  assert_all_close(history, [
      [1.0],  # w0
      [0.99],  # w1 = w0 - 0.01 * 2.0 / sqrt(4)
      [0.9829289],  # w2 = w1 - 0.01 * 2.0 / sqrt(8)
      [0.9771554],  # w3 = w2 - 0.01 * 2.0 / sqrt(12)
      [0.9721554],  # w4 = w3 - 0.01 * 2.0 / sqrt(16)
  ])


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_executes_with(spec_name):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = ones_like_spec(spec)
  optimizer = build_adagrad(0.01)

  state = optimizer.initialize(spec)
  for _ in range(10):
    state, weights = optimizer.next(state, weights, gradients)

  for w in jax.tree.leaves(weights):
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("structure", EMPTY_TREES.values(), ids=EMPTY_TREES.keys())
def test_behavior_on_empty_tree(structure):
  weights = gradients = structure
  optimizer = build_adagrad(0.01)
  state = optimizer.initialize(weights)

  updated_state, updated_weights = optimizer.next(state, weights, gradients)

  assert updated_state == state
  assert updated_weights == weights


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_skips_none_gradients(spec_name):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = jax.tree.map(lambda s: None, spec)
  optimizer = build_adagrad(0.01)

  state = optimizer.initialize(spec)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)

  assert_trees_equal(weights, updated_weights)
  assert_trees_equal(state, updated_state)


def test_convergence():
  init_w, fn, grad_fn = test_quadratic_problem()
  weights = init_w()
  assert fn(weights) > 5.0

  optimizer = build_adagrad(0.5)
  state = optimizer.initialize(jax.ShapeDtypeStruct(weights.shape, weights.dtype))

  for _ in range(100):
    gradients = grad_fn(weights)
    state, weights = optimizer.next(state, weights, gradients)
  assert fn(weights) < 0.005


def test_build_adagrad():
  optimizer = build_adagrad(0.01)
  assert isinstance(optimizer, optimizers.Optimizer)


def test_match_keras():
  initial_weight, gradients = match_keras_inputs()
  assert_optimizers_numerically_close(
      initial_weight, gradients,
      lambda: build_adagrad(0.01),
      # spelling: tf.keras.optimizers.Adagrad -> keras.optimizers.Adagrad (Keras 3)
      lambda keras: keras.optimizers.Adagrad(0.01))


@pytest.mark.parametrize("lr,preconditioner,epsilon,regex", [
    (-1.0, 0.1, 1e-7, "learning_rate"),
    (1.0, -0.1, 1e-7, "initial_preconditioner_value"),
    (1.0, 0.1, -1e-7, "epsilon"),
], ids=["negative_lr", "negative_preconditioner", "negative_epsilon"])
def test_invalid_args_raises(lr, preconditioner, epsilon, regex):
  with pytest.raises(ValueError, match=regex):
    build_adagrad(lr, preconditioner, epsilon)


def test_weights_gradients_mismatch_raises():
  optimizer = build_adagrad(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([1], np.float32), np.zeros([2], np.float32))


def test_initialize_next_weights_mismatch_raises():
  optimizer = build_adagrad(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([2], np.float32), np.zeros([2], np.float32))


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_get_hparams_returns_expected_result(spec_name):
  optimizer = build_adagrad(learning_rate=0.1, epsilon=0.01, initial_preconditioner_value=0.2)
  state = optimizer.initialize(SPECS[spec_name])
  expected_hparams = collections.OrderedDict(learning_rate=0.1, epsilon=0.01)
  actual_hparams = optimizer.get_hparams(state)
  assert isinstance(actual_hparams, collections.OrderedDict)
  assert actual_hparams == expected_hparams


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_hparams_returns_expected_result(spec_name):
  optimizer = build_adagrad(learning_rate=0.1, epsilon=0.01, initial_preconditioner_value=0.2)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = collections.OrderedDict(learning_rate=0.5, epsilon=2.0)
  expected_state = copy.deepcopy(state)
  for k, v in hparams.items():
    expected_state[k] = v
  updated_state = optimizer.set_hparams(state, hparams)
  assert isinstance(updated_state, collections.OrderedDict)
  assert_trees_equal(updated_state, expected_state)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_get_hparams_is_no_op(spec_name):
  optimizer = build_adagrad(learning_rate=0.1)
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
    adagrad_optimizer = build_adagrad(
        learning_rate=np.array(0.1, dtype=np.float32),
        initial_preconditioner_value=np.array(0.1, dtype=np.float32),
        epsilon=np.array(0.1, dtype=np.float64),
    )
    state = adagrad_optimizer.initialize(weights)
    adagrad_optimizer.next(state, weights, jax.tree.map(np.zeros_like, weights))
