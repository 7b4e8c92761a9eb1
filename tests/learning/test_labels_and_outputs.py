"""Labels out of range are skipped and counted (never a silent loss of 0.0),
`model.loss` is a scalar for `jax.grad`, fixed-size batches are averaged per
example, and a learning process's metrics are plain Python numbers."""

import collections
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
import keras

BACKENDS = ["reference", "vectorized"]
CLASSES = 10


def _model():
  keras.utils.set_random_seed(0)
  km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(CLASSES, activation="softmax")])
  return fedjit.learning.models.functional_model_from_keras(
      km, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
      input_spec=((np.float32, [None, 4]), (np.int32, [None])),
      metrics_constructor=collections.OrderedDict(
          accuracy=keras.metrics.SparseCategoricalAccuracy))


def _client(labels, seed):
  x = np.random.default_rng(seed).normal(size=(len(labels), 4)).astype(np.float32)
  y = np.asarray(labels, np.int32)
  return [(x[i:i + 4], y[i:i + 4]) for i in range(0, len(y), 4)]


def _without_invalid(client):
  out = []
  for x, y in client:
    keep = (y >= 0) & (y < CLASSES)
    if keep.any():
      out.append((x[keep], y[keep]))
  return out


def _np_cross_entropy(w, b, x, y):
  logits = x @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  return -np.log(p[np.arange(len(y)), y])


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_range_labels_are_skipped_counted_and_warned(backend):
  model = _model()
  trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
      model, client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.1))
  bad = [_client([0, 1, 2, 15, -1, 3, 1, 2], 0), _client([4, 5, 6, 7], 1)]
  clean = [_without_invalid(c) for c in bad]
  state = trainer.initialize()
  with fedjit.backend(backend):
    with pytest.warns(UserWarning, match="2 examples were skipped because their labels"):
      got = trainer.next(state, bad)
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      want = trainer.next(state, clean)
  train = got.metrics["client_work"]["train"]
  assert train["num_invalid_labels"] == 2 and train["num_examples"] == 10
  assert "num_invalid_labels" in want.metrics["client_work"]["train"]
  assert want.metrics["client_work"]["train"]["num_invalid_labels"] == 0
  # The skipped examples changed nothing: the same update as without them.
  for a, b in zip(trainer.get_model_weights(got.state).trainable,
                  trainer.get_model_weights(want.state).trainable):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # ... and the loss is over the valid examples only, never 0.0.
  assert train["loss"] == pytest.approx(want.metrics["client_work"]["train"]["loss"], rel=1e-6)
  assert train["loss"] > 0.5


def test_loss_is_not_zero_when_every_label_is_invalid():
  model = _model()
  evaluation = fedjit.learning.algorithms.build_fed_eval(model)
  state = evaluation.initialize()
  with pytest.warns(UserWarning, match="4 examples were skipped"):
    out = evaluation.next(state, [_client([10, 11, -1, 99], 0)])
  metrics = out.metrics["client_work"]["eval"]["current_round_metrics"]
  assert metrics["num_examples"] == 0 and metrics["num_invalid_labels"] == 4
  assert np.isnan(metrics["loss"])


def test_label_check_knows_keras_loss_functions_and_ignore_class():
  spec = ((np.float32, [None, 4]), (np.int32, [None]))
  model = fedjit.learning.models.from_functions(
      lambda rng: {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: keras.losses.sparse_categorical_crossentropy(y, logits, True), spec)
  assert model.checks_labels  # a lambda: int32[?] labels against [?, 3] predictions
  assert not fedjit.learning.models.from_functions(
      lambda rng: {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: keras.losses.sparse_categorical_crossentropy(y, logits, True), spec,
      integer_labels=False).checks_labels
  with pytest.raises(TypeError, match="integer_labels must be True, False or None"):
    fedjit.learning.models.from_functions(
        lambda rng: {"w": jnp.zeros((4, 3))}, lambda p, x: x @ p["w"],
        lambda y, logits: logits[:, 0], spec, integer_labels="yes")
  # Integer targets against one output (regression or binary) are not classes.
  assert not fedjit.learning.models.from_functions(
      lambda rng: {"w": jnp.zeros((4, 1))}, lambda p, x: x @ p["w"],
      lambda y, p: (y - p) ** 2, ((np.float32, [None, 4]), (np.int32, [None, 1]))).checks_labels
  model = fedjit.learning.models.from_functions(
      lambda rng: {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)},
      lambda p, x: jax.nn.softmax(x @ p["w"] + p["b"]),
      keras.losses.sparse_categorical_crossentropy, spec)
  assert model.checks_labels
  x = np.ones((4, 4), np.float32)
  out = model.forward_pass(model.initial_weights, (x, np.array([0, 1, 3, -2], np.int32)))
  assert int(out.num_examples) == 2
  np.testing.assert_allclose(float(out.loss), np.log(3.0), rtol=1e-6)

  ignoring = fedjit.learning.models.functional_model_from_keras(
      keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]),
      keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
      input_spec=spec)
  out = ignoring.forward_pass(ignoring.initial_weights, (x, np.array([0, -1, 3, 1], np.int32)))
  assert int(out.num_examples) == 3  # -1 is Keras's ignored class, 3 is out of range

  regression = fedjit.learning.models.from_functions(
      lambda rng: {"w": jnp.zeros((4, 1))}, lambda p, x: x @ p["w"],
      lambda y, p: (y - p[:, 0]) ** 2, ((np.float32, [None, 4]), (np.float32, [None])))
  assert not regression.checks_labels
  assert "num_invalid_labels" not in regression.metrics_init()


def test_loss_is_a_scalar_for_jax_grad_and_forward_pass_has_the_outputs():
  model = _model()
  weights = model.initial_weights
  x, y = _client([1, 2, 3, 4], 0)[0]
  grads = jax.grad(model.loss)(weights, (x, y))
  w, b = (np.asarray(v, np.float64) for v in weights.trainable)
  logits = x @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  onehot = np.eye(CLASSES)[y]
  np.testing.assert_allclose(grads.trainable[0], x.T @ (p - onehot) / 4, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grads.trainable[1], (p - onehot).mean(0), rtol=1e-4, atol=1e-6)
  out = model.forward_pass(weights, (x, y))
  assert isinstance(out, fedjit.learning.models.BatchOutput)
  np.testing.assert_allclose(float(out.loss), _np_cross_entropy(w, b, x, y).mean(), rtol=1e-5)
  assert out.predictions.shape == (4, CLASSES) and int(out.num_examples) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_size_batches_average_the_loss_per_example(backend):
  """`batch(4, drop_remainder=True)` gives int32[4] batches (no '?'): the
  round's loss is still the mean over examples, and num_examples counts
  examples, not batches."""
  model = fedjit.learning.models.from_functions(
      lambda rng: {"w": jnp.zeros((1,)), "b": jnp.zeros(())},
      lambda p, x: x * p["w"] + p["b"],
      lambda y, p: (y - p) ** 2, ((np.float32, [4]), (np.float32, [4])))
  x = np.arange(8, dtype=np.float32)
  data = fedjit.simulation.Dataset.from_tensor_slices((x, 2 * x)).batch(4, drop_remainder=True)
  trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
      model, client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.0))
  with fedjit.backend(backend):
    out = trainer.next(trainer.initialize(), [data])
  train = out.metrics["client_work"]["train"]
  assert train["num_examples"] == 8 and train["num_batches"] == 2
  assert train["loss"] == pytest.approx(np.mean((2 * x) ** 2), rel=1e-6)


def test_metrics_are_plain_python_numbers_in_their_order():
  trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
      _model(), client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.1))
  out = trainer.next(trainer.initialize(), [_client([1, 2, 3, 4, 5], 0)])
  train = out.metrics["client_work"]["train"]
  assert type(train["loss"]) is float and type(train["num_examples"]) is int
  assert list(out.metrics) == ["distributor", "client_work", "aggregator", "finalizer"]
  assert "np.float32" not in repr(out.metrics)
  # The Python float prints as the float32 did, and is the same float32.
  assert np.float32(train["loss"]) == np.float32(repr(train["loss"]))
  assert len(repr(train["loss"])) <= 11
