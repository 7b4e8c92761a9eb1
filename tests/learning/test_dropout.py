"""Random-number state in models (dropout): every client draws its own masks,
new ones every round, identically on both backends. Keras and Flax NNX."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit  # before keras: fedjit selects Keras's JAX backend
import keras

from fedjit import learning

try:
  from flax import nnx
except ImportError:  # pragma: no cover
  nnx = None

K = 64  # input features, each dropped with probability 1/2
SPEC = ((np.float32, [None, K]), (np.float32, [None, 2]))
LR = 0.1


def _keras_model():
  return learning.models.from_keras_model(
      keras.Sequential([keras.layers.Dropout(0.5, seed=3),
                        keras.layers.Dense(2, use_bias=False, kernel_initializer="zeros")]),
      loss=keras.losses.MeanSquaredError(), input_spec=SPEC)


def _flax_model():
  if nnx is None:
    pytest.skip("flax is not installed")

  class DropoutLinear(nnx.Module):

    def __init__(self):
      self.dropout = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=3))
      self.linear = nnx.Linear(K, 2, use_bias=False, kernel_init=nnx.initializers.zeros,
                               rngs=nnx.Rngs(0))

    def __call__(self, x):
      return self.linear(self.dropout(x))

  return learning.models.from_flax_model(
      DropoutLinear(), lambda y, p: jnp.mean((y - p) ** 2, axis=-1), SPEC)


MODELS = {"keras": _keras_model, "flax": _flax_model}

# Clients A and B hold one example x = 1 with targets (1, 0) and (0, 1). From
# zero weights, output 0, so with the kept-feature mask m (kept inputs scaled
# by 2) the MSE gradient of kernel column c is -(y_c) * 2m: one SGD step moves
# A only in column 0 and B only in column 1, by LR * 2 * m. Client C's targets
# are 0 = its output, so its update is zero; its two uneven batches make the
# vectorized backend pad A and B (rows and a whole batch).
_rng = np.random.default_rng(0)
CLIENTS = [
    [(np.ones((1, K), np.float32), np.array([[1, 0]], np.float32))],
    [(np.ones((1, K), np.float32), np.array([[0, 1]], np.float32))],
    [(_rng.normal(size=(3, K)).astype(np.float32), np.zeros((3, 2), np.float32)),
     (_rng.normal(size=(2, K)).astype(np.float32), np.zeros((2, 2), np.float32))],
]


def _kernels_by_round(make_model, backend, rounds=3):
  """The global kernel after each round, each round started from zero weights
  (so a round's update shows that round's masks); the RNG state carries on."""
  with fedjit.backend(backend):
    trainer = learning.algorithms.build_unweighted_fed_avg(
        make_model(), client_optimizer_fn=learning.optimizers.build_sgdm(LR))
    state = trainer.initialize()
    zero = trainer.get_model_weights(state)
    kernels = []
    for _ in range(rounds):
      weights = trainer.get_model_weights(state)
      state = trainer.next(trainer.set_model_weights(
          state, weights._replace(trainable=zero.trainable)), CLIENTS).state
      kernels.append(np.asarray(jax.tree_util.tree_leaves(
          trainer.get_model_weights(state).trainable)[0]))
  return kernels


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_dropout_masks_differ_across_rounds_and_clients_same_on_both_backends(kind):
  by_backend = {b: _kernels_by_round(MODELS[kind], b) for b in ("reference", "vectorized")}
  for a, b in zip(by_backend["reference"], by_backend["vectorized"]):
    np.testing.assert_allclose(a, b, atol=1e-5)

  step = LR * 2 / 3  # one client's step, averaged over three clients
  masks = []  # per round: (client A's mask, client B's mask)
  for kernel in by_backend["vectorized"]:
    kept = np.isclose(kernel, step, atol=1e-6)
    assert np.all(kept | np.isclose(kernel, 0.0, atol=1e-7)), kernel  # a scaled 0/1 mask
    assert 0.2 < kept.mean() < 0.8, kept.mean()  # rate 1/2
    masks.append((kept[:, 0], kept[:, 1]))
  for a, b in masks:
    assert not np.array_equal(a, b)  # clients draw different masks
  for (a0, b0), (a1, b1) in zip(masks, masks[1:]):
    assert not np.array_equal(a0, a1) and not np.array_equal(b0, b1)  # rounds too


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_flax_dropout_model_trains_under_fed_avg(backend):
  model = _flax_model()
  rng = np.random.default_rng(1)
  true_w = rng.normal(size=(K, 2)).astype(np.float32) / 8
  clients = []
  for n in (12, 7):
    x = rng.normal(size=(n, K)).astype(np.float32)
    clients.append([(x[i:i + 4], x[i:i + 4] @ true_w) for i in range(0, n, 4)])
  with fedjit.backend(backend):
    trainer = learning.algorithms.build_weighted_fed_avg(
        model, client_optimizer_fn=learning.optimizers.build_sgdm(0.05))
    state = trainer.initialize()
    initial_rng_state = jax.tree_util.tree_leaves(trainer.get_model_weights(state).non_trainable)
    losses = []
    for _ in range(4):
      result = trainer.next(state, clients)
      state = result.state
      losses.append(float(result.metrics["client_work"]["train"]["loss"]))
  assert losses[-1] < losses[0], losses
  rng_state = jax.tree_util.tree_leaves(trainer.get_model_weights(state).non_trainable)
  assert rng_state and all(np.asarray(l).dtype == np.uint32 for l in rng_state)
  # The server moves the model's RNG state on every round.
  assert any(not np.array_equal(a, b) for a, b in zip(rng_state, initial_rng_state))
