"""Port of TFF's AdamW optimizer tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/adamw_test.py

Spelling: `adamw.build_adamw` -> `fedjit.learning.optimizers.build_adamw`;
`optimizer_base.Optimizer` -> `fedjit.learning.optimizers.Optimizer`;
`tf.TensorSpec` -> `jax.ShapeDtypeStruct`; `tf.constant` / `tf.zeros` ->
`np.array` / `np.zeros` (float32, TF's default); private constants
(`adamw._STEP_KEY`, ...) -> their string values; `tf.bfloat16` ->
`jnp.bfloat16`; `tf.float64` values run under `jax.enable_x64(True)`;
`tf.keras.optimizers.AdamW` -> Keras 3's `keras.optimizers.AdamW`; TF asserts ->
pytest / NumPy (see `_tff_optimizer_utils`).

Left out: `test_executes_with_indexed_slices` (`tf.IndexedSlices` has no JAX
counterpart: JAX gradients are dense arrays; its numbers, 0.498 and 0.998, are
checked with dense gradients in tests/learning/test_optimizers.py). TFF's
adamw_test has no `test_math`.
"""

import collections
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedjit.learning import optimizers
from fedjit.learning.optimizers import LEARNING_RATE_KEY

from ._tff_optimizer_utils import (EMPTY_TREES, SCALAR_SPEC, SPECS,
                                   assert_optimizers_numerically_close,
                                   assert_trees_equal, match_keras_inputs,
                                   ones_like_spec, test_quadratic_problem)

build_adamw = optimizers.build_adamw  # spelling: adamw.build_adamw -> optimizers.build_adamw
_STEP_KEY = "step"  # spelling: adamw._STEP_KEY -> "step"


def test_state_structure():
  optimizer = build_adamw(0.01)
  state = optimizer.initialize(SCALAR_SPEC)
  assert len(state) == 8
  assert LEARNING_RATE_KEY in state
  for key in ("beta_1", "beta_2", "epsilon", "step", "preconditioner", "accumulator",
              "weight_decay"):
    assert key in state  # spelling: adamw._BETA_1_KEY etc. -> their string values


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_executes_with(spec_name):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = ones_like_spec(spec)
  optimizer = build_adamw(0.01)

  state = optimizer.initialize(spec)
  for _ in range(10):
    state, weights = optimizer.next(state, weights, gradients)

  for w in jax.tree.leaves(weights):
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("structure", EMPTY_TREES.values(), ids=EMPTY_TREES.keys())
def test_behavior_on_empty_tree(structure):
  weights = gradients = structure
  optimizer = build_adamw(0.01)

  state = optimizer.initialize(weights)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)
  state[_STEP_KEY] += 1

  assert updated_state == state
  assert updated_weights == weights


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_skips_none_gradients(spec_name):
  spec = SPECS[spec_name]
  weights = ones_like_spec(spec)
  gradients = jax.tree.map(lambda s: None, spec)
  optimizer = build_adamw(0.01)

  state = optimizer.initialize(spec)
  updated_state, updated_weights = optimizer.next(state, weights, gradients)
  state[_STEP_KEY] += 1

  assert_trees_equal(weights, updated_weights)
  assert_trees_equal(state, updated_state)


def test_convergence():
  init_w, fn, grad_fn = test_quadratic_problem()
  weights = init_w()
  assert fn(weights) > 5.0

  optimizer = build_adamw(0.5)
  state = optimizer.initialize(jax.ShapeDtypeStruct(weights.shape, weights.dtype))

  for _ in range(100):
    gradients = grad_fn(weights)
    state, weights = optimizer.next(state, weights, gradients)
  assert fn(weights) < 0.005


def test_build_adamw():
  optimizer = build_adamw(0.01)
  assert isinstance(optimizer, optimizers.Optimizer)


def test_match_keras():
  initial_weight, gradients = match_keras_inputs()
  assert_optimizers_numerically_close(
      initial_weight, gradients,
      lambda: build_adamw(learning_rate=0.01, beta_1=0.9, beta_2=0.999, weight_decay=0.004),
      # spelling: tf.keras.optimizers.AdamW -> keras.optimizers.AdamW (Keras 3)
      lambda keras: keras.optimizers.AdamW(
          learning_rate=0.01, beta_1=0.9, beta_2=0.999, weight_decay=0.004))


@pytest.mark.parametrize("lr,beta_1,beta_2,epsilon,weight_decay,regex", [
    (-1.0, 0.9, 0.999, 1e-7, 0.001, "learning_rate"),
    (1.0, -0.9, 0.999, 1e-7, 0.001, "beta_1"),
    (1.0, 1.1, 0.999, 1e-7, 0.001, "beta_1"),
    (1.0, 0.9, -0.999, 1e-7, 0.001, "beta_2"),
    (1.0, 0.9, 1.1, 1e-7, 0.001, "beta_2"),
    (1.0, 0.9, 0.999, -1e-7, 0.001, "epsilon"),
    (1.0, 0.9, 0.999, 1e-7, -0.004, "weight_decay"),
], ids=["negative_lr", "negative_beta_1", "beta_1_greater_than_1", "negative_beta_2",
        "beta_2_greater_than_1", "negative_epsilon", "negative_weight_decay"])
def test_invalid_args_raises(lr, beta_1, beta_2, epsilon, weight_decay, regex):
  with pytest.raises(ValueError, match=regex):
    build_adamw(lr, beta_1, beta_2, epsilon, weight_decay)


def test_weights_gradients_mismatch_raises():
  optimizer = build_adamw(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([1], np.float32), np.zeros([2], np.float32))


def test_initialize_next_weights_mismatch_raises():
  optimizer = build_adamw(0.1)
  state = optimizer.initialize(SCALAR_SPEC)
  with pytest.raises(ValueError):
    optimizer.next(state, np.zeros([2], np.float32), np.zeros([2], np.float32))


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_get_hparams_returns_expected_result(spec_name):
  optimizer = build_adamw(
      learning_rate=0.1, beta_1=0.92, beta_2=0.97, epsilon=0.01, weight_decay=0.002)
  state = optimizer.initialize(SPECS[spec_name])
  expected_hparams = collections.OrderedDict(
      learning_rate=0.1, beta_1=0.92, beta_2=0.97, epsilon=0.01, weight_decay=0.002)
  actual_hparams = optimizer.get_hparams(state)
  assert isinstance(actual_hparams, collections.OrderedDict)
  assert actual_hparams == expected_hparams


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_hparams_returns_expected_result(spec_name):
  optimizer = build_adamw(
      learning_rate=0.1, beta_1=0.92, beta_2=0.97, epsilon=0.01, weight_decay=0.002)
  state = optimizer.initialize(SPECS[spec_name])
  hparams = collections.OrderedDict(
      learning_rate=0.5, beta_1=0.12, beta_2=0.56, epsilon=2.0, weight_decay=0.005)
  expected_state = copy.deepcopy(state)
  for k, v in hparams.items():
    expected_state[k] = v
  updated_state = optimizer.set_hparams(state, hparams)
  assert isinstance(updated_state, collections.OrderedDict)
  assert_trees_equal(updated_state, expected_state)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_set_get_hparams_is_no_op(spec_name):
  optimizer = build_adamw(0.1)
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
    adamw_optimizer = build_adamw(
        learning_rate=np.array(0.1, dtype=np.float32),
        beta_1=np.array(0.1, dtype=np.float32),
        beta_2=np.array(0.1, dtype=np.float32),
        epsilon=np.array(0.1, dtype=np.float64),
    )
    state = adamw_optimizer.initialize(weights)
    adamw_optimizer.next(state, weights, jax.tree.map(np.zeros_like, weights))
