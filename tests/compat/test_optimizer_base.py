"""Port of TFF's optimizer base-class tests (default hparams, structure checks).

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/optimizer_test.py

Spelling: `optimizer.Optimizer` -> `fedjit.learning.optimizers.Optimizer`;
`optimizer.check_weights_gradients_match` / `check_weights_state_match` ->
`fedjit.learning.optimizers.check_weights_gradients_match` /
`check_weights_state_match`; `tf.zeros(shape, dtype)` -> `np.zeros(shape,
dtype)`; `tf.float64` values run under `jax.enable_x64(True)` (without it JAX
holds float64 state as float32, so a float64 state matches float32 weights);
TF asserts -> pytest.

Left out: `test_handle_indexed_slices_single_value` and
`test_handle_indexed_slices_struct` (`tf.IndexedSlices` and
`handle_indexed_slices_gradients` have no JAX counterpart: JAX gradients are
dense arrays).
"""

import collections
import contextlib

import jax
import numpy as np
import pytest

from fedjit.learning import optimizers


class _TestOptimizer(optimizers.Optimizer):

  def initialize(self, specs):
    del specs
    return (0, 1)

  def next(self, state, weights, gradients):
    del gradients
    return state, weights


def test_get_hparams_returns_empty_dict():
  test_optimizer = _TestOptimizer()
  state = test_optimizer.initialize(specs=())
  hparams = test_optimizer.get_hparams(state)
  assert hparams == collections.OrderedDict()


def test_set_hparams_returns_input_state():
  test_optimizer = _TestOptimizer()
  state = test_optimizer.initialize(specs=())
  hparams = collections.OrderedDict(a=1, b=2)
  updated_state = test_optimizer.set_hparams(state, hparams)
  assert state == updated_state


# spelling: tf.zeros([n]) -> np.zeros([n], np.float32) (TF's default dtype)
_MISMATCHES = {
    "bad_shape": (np.zeros([2], np.float32), np.zeros([3], np.float32)),
    "bad_dtype": (np.zeros([2], np.float32), np.zeros([2], np.float64)),
    "bad_structure": ([np.zeros([2], np.float32), np.zeros([3], np.float32)],
                      [np.zeros([2], np.float32), [np.zeros([3], np.float32)]]),
}


def _x64_for(name):
  return jax.enable_x64(True) if name == "bad_dtype" else contextlib.nullcontext()


@pytest.mark.parametrize("name", sorted(_MISMATCHES))
def test_check_weights_gradients_match(name):
  weights, gradients = _MISMATCHES[name]
  with _x64_for(name), pytest.raises(ValueError):
    optimizers.check_weights_gradients_match(weights, gradients)


@pytest.mark.parametrize("name", sorted(_MISMATCHES))
def test_check_weights_state_match(name):
  weights, state = _MISMATCHES[name]
  with _x64_for(name), pytest.raises(ValueError, match="foo"):
    optimizers.check_weights_state_match(weights, state, name="foo")


def test_only_check_non_none_gradients():
  weights = [np.zeros([2], np.float32), np.zeros([3], np.float32)]
  gradients = [None, np.zeros([3], np.float32)]
  optimizers.check_weights_gradients_match(weights, gradients)
