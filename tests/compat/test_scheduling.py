"""Port of TFF's learning-rate scheduling tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/scheduling_test.py

Spelling: `scheduling.schedule_learning_rate` ->
`fedjit.learning.optimizers.schedule_learning_rate`; `sgdm.build_sgdm` etc. ->
`fedjit.learning.optimizers.build_sgdm` etc.; `optimizer_base.Optimizer` ->
`fedjit.learning.optimizers.Optimizer`; `tf.TensorSpec((), tf.float32)` ->
`jax.ShapeDtypeStruct((), np.float32)`; `tf.constant(1.0)` ->
`np.float32(1.0)`; the `@tf.function` schedule's Python `if` (autograph) ->
`jnp.where`; `tf.keras.optimizers.SGD` -> Keras 3's `keras.optimizers.SGD`;
TF asserts -> pytest / NumPy.

Every case is ported; none is left out.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedjit.learning import optimizers

from ._tff_optimizer_utils import keras


def _example_schedule_fn(round_num):
  # spelling: tf.function with `if round_num < 2: return 0.1; return 0.01` -> jnp.where
  return jnp.where(round_num < 2, 0.1, 0.01)


def test_scheduled_sgd_computes_correctly():
  scheduled_sgd = optimizers.schedule_learning_rate(
      optimizers.build_sgdm(1.0), _example_schedule_fn)

  weight = np.float32(1.0)  # spelling: tf.constant(1.0) -> np.float32(1.0)
  gradient = np.float32(1.0)
  state = scheduled_sgd.initialize(jax.ShapeDtypeStruct((), np.float32))
  state, weight = scheduled_sgd.next(state, weight, gradient)
  np.testing.assert_allclose(0.9, weight, rtol=1e-6, atol=1e-6)  # Learning rate initially 0.1.
  state, weight = scheduled_sgd.next(state, weight, gradient)
  np.testing.assert_allclose(0.8, weight, rtol=1e-6, atol=1e-6)
  state, weight = scheduled_sgd.next(state, weight, gradient)
  np.testing.assert_allclose(0.79, weight, rtol=1e-6, atol=1e-6)  # Learning rate has decreased to 0.01.
  state, weight = scheduled_sgd.next(state, weight, gradient)
  np.testing.assert_allclose(0.78, weight, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("build", [
    lambda: optimizers.build_adagrad(1.0),
    lambda: optimizers.build_adam(1.0),
    lambda: optimizers.build_rmsprop(1.0),
    lambda: optimizers.build_sgdm(1.0),
    lambda: optimizers.build_sgdm(1.0, momentum=0.9),
    lambda: optimizers.build_yogi(1.0),
], ids=["adagrad", "adam", "rmsprop", "sgd", "sgdm", "yogi"])
def test_schedule_learning_rate_integrates_with(build):
  scheduled_optimizer = optimizers.schedule_learning_rate(build(), _example_schedule_fn)
  assert isinstance(scheduled_optimizer, optimizers.Optimizer)


def test_keras_optimizer_raises():
  keras_optimizer = keras().optimizers.SGD(1.0)  # spelling: tf.keras -> keras (Keras 3)
  with pytest.raises(TypeError):
    optimizers.schedule_learning_rate(keras_optimizer, _example_schedule_fn)


def test_scheduling_scheduled_optimizer_raises():
  scheduled_optimizer = optimizers.schedule_learning_rate(
      optimizers.build_sgdm(1.0), _example_schedule_fn)
  twice_scheduled_optimizer = optimizers.schedule_learning_rate(
      scheduled_optimizer, _example_schedule_fn)
  with pytest.raises(KeyError, match="must have learning rate"):
    twice_scheduled_optimizer.initialize(jax.ShapeDtypeStruct((), np.float32))
