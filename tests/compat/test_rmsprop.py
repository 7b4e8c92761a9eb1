"""Port of TFF's RMSprop optimizer tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/rmsprop_test.py

Spelling: `rmsprop.build_rmsprop` -> `fedjit.learning.optimizers.build_rmsprop`;
`optimizer_base.Optimizer` -> `fedjit.learning.optimizers.Optimizer`;
`tf.TensorSpec` -> `jax.ShapeDtypeStruct`; `tf.constant` / `tf.zeros` ->
`np.array` / `np.zeros` (float32, TF's default); private constants
(`rmsprop._DECAY_KEY`, ...) -> their string values;
`tf.keras.optimizers.RMSprop` -> Keras 3's `keras.optimizers.RMSprop`; TF
asserts -> pytest / NumPy (see `_tff_optimizer_utils`).

Left out: `test_executes_with_indexed_slices` (`tf.IndexedSlices` has no JAX
counterpart: JAX gradients are dense arrays).
"""

import collections
import copy

import jax
import numpy as np
import pytest

from fedjit.learning import optimizers
from fedjit.learning.optimizers import LEARNING_RATE_KEY

from ._tff_optimizer_utils import (EMPTY_TREES, SCALAR_SPEC, SPECS, assert_all_close,
                                   assert_optimizers_numerically_close,
                                   assert_trees_equal, match_keras_inputs,
                                   ones_like_spec, test_quadratic_problem)

build_rmsprop = optimizers.build_rmsprop  # spelling: rmsprop.build_rmsprop -> optimizers.build_rmsprop


def test_state_structure():
  optimizer = build_rmsprop(0.01)
  state = optimizer.initialize(SCALAR_SPEC)
  assert len(state) == 4
  assert LEARNING_RATE_KEY in state
  assert "decay" in state  # spelling: rmsprop._DECAY_KEY -> "decay"
  assert "epsilon" in state  # spelling: rmsprop._EPSILON_KEY -> "epsilon"
  assert "preconditioner" in state  # spelling: rmsprop._PRECONDITIONER_KEY -> "preconditioner"


def test_math():
  weights = np.array([1.0], np.float32)  # spelling: tf.constant -> np.array
  gradients = np.array([2.0], np.float32)
  optimizer = build_rmsprop(learning_rate=0.01, decay=0.5, epsilon=0.0)
  history = [weights]

  state = optimizer.initialize(SCALAR_SPEC)

  for _ in range(4):
    state, weights = optimizer.next(state, weights, gradients)
    history.append(weights)
  assert_all_close(history, [
      [1.0],  # w0
      [0.98585784],  # w1 = w0 - 0.01 * 2.0 / sqrt(2.0)
      [0.97431080],  # w2 = w1 - 0.01 * 2.0 / sqrt(3.0)
      [0.96362036],  # w3 = w2 - 0.01 * 2.0 / sqrt(3.5)
      [0.95329240],  # w4 = w3 - 0.01 * 2.0 / sqrt(3.75)
  ])


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_executes_with(spec_name):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = ones_like_spec(spec)
  optimizer = build_rmsprop(0.01)

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
  optimizer = build_rmsprop(0.01)

  state = optimizer.initialize(spec)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)

  assert_trees_equal(weights, updated_weights)
  assert_trees_equal(state, updated_state)


@pytest.mark.parametrize("structure", EMPTY_TREES.values(), ids=EMPTY_TREES.keys())
def test_behavior_on_empty_tree(structure):
  weights = gradients = structure
  optimizer = build_rmsprop(0.01)

  state = optimizer.initialize(weights)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)

  assert updated_state == state
  assert updated_weights == weights


def test_convergence():
  init_w, fn, grad_fn = test_quadratic_problem()
  weights = init_w()
  assert fn(weights) > 5.0

  optimizer = build_rmsprop(0.02)
  state = optimizer.initialize(jax.ShapeDtypeStruct(weights.shape, weights.dtype))

  for _ in range(200):
    gradients = grad_fn(weights)
    state, weights = optimizer.next(state, weights, gradients)
  assert fn(weights) < 0.005


def test_build_rmsprop():
  optimizer = build_rmsprop(0.01)
  assert isinstance(optimizer, optimizers.Optimizer)


def test_match_keras():
  initial_weight, gradients = match_keras_inputs()
  assert_optimizers_numerically_close(
      initial_weight, gradients,
      lambda: build_rmsprop(0.01, decay=0.9),
      # spelling: tf.keras.optimizers.RMSprop -> keras.optimizers.RMSprop (Keras 3)
      lambda keras: keras.optimizers.RMSprop(0.01, rho=0.9))


@pytest.mark.parametrize("lr,decay,epsilon,regex", [
    (-1.0, 0.9, 1e-7, "learning_rate"),
    (1.0, -0.9, 1e-7, "decay"),
    (1.0, 1.1, 1e-7, "decay"),
    (1.0, 0.1, -1e-7, "epsilon"),
], ids=["negative_lr", "negative_decay", "decay_greater_than_1", "negative_epsilon"])
def test_invalid_args_raises(lr, decay, epsilon, regex):
  with pytest.raises(ValueError, match=regex):
    build_rmsprop(lr, decay, epsilon)


def test_weights_gradients_mismatch_raises():
  optimizer = build_rmsprop(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([1], np.float32), np.zeros([2], np.float32))


def test_initialize_next_weights_mismatch_raises():
  optimizer = build_rmsprop(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([2], np.float32), np.zeros([2], np.float32))


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_get_hparams_returns_expected_result(spec_name):
  optimizer = build_rmsprop(learning_rate=0.1, decay=0.9, epsilon=0.01)
  state = optimizer.initialize(SPECS[spec_name])
  expected_hparams = collections.OrderedDict(learning_rate=0.1, decay=0.9, epsilon=0.01)
  actual_hparams = optimizer.get_hparams(state)
  assert isinstance(actual_hparams, collections.OrderedDict)
  assert actual_hparams == expected_hparams


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_hparams_returns_expected_result(spec_name):
  optimizer = build_rmsprop(learning_rate=0.1, decay=0.9, epsilon=0.01)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = collections.OrderedDict(learning_rate=0.5, decay=0.51, epsilon=2.0)
  expected_state = copy.deepcopy(state)
  for k, v in hparams.items():
    expected_state[k] = v
  updated_state = optimizer.set_hparams(state, hparams)
  assert isinstance(updated_state, collections.OrderedDict)
  assert_trees_equal(updated_state, expected_state)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_get_hparams_is_no_op(spec_name):
  optimizer = build_rmsprop(learning_rate=0.1)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = optimizer.get_hparams(state)
  updated_state = optimizer.set_hparams(state, hparams)
  assert_trees_equal(state, updated_state)
