"""A federated computation as a plain JAX function: gradients through a round."""

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, SequenceType, TensorType

W = TensorType(np.float32, [3])
DATA = SequenceType((TensorType(np.float32, [None, 3]), TensorType(np.float32, [None])))


@fedjit.jax_computation(DATA, W, np.float32)
def client_update(data, w, lr):
  def step(w, batch, mask):
    x, y = batch
    grad = jax.grad(lambda w: jnp.sum(mask * (x @ w - y) ** 2) / jnp.maximum(mask.sum(), 1))(w)
    return w - lr * grad
  return data.reduce(w, step, with_mask=True)


@fedjit.jax_computation(W, DATA)
def squared_error(w, data):
  def step(total, batch, mask):
    x, y = batch
    return total + jnp.sum(mask * (x @ w - y) ** 2)
  return data.reduce(jnp.float32(0), step, with_mask=True)


@fedjit.federated_computation(FederatedType(W, SERVER), FederatedType(np.float32, SERVER),
                              FederatedType(DATA, CLIENTS))
def loss_after_round(w, lr, data):
  new_w = fedjit.federated_mean(fedjit.federated_map(
      client_update, (data, fedjit.federated_broadcast(w), fedjit.federated_broadcast(lr))))
  return fedjit.federated_sum(fedjit.federated_map(
      squared_error, (fedjit.federated_broadcast(new_w), data)))


def _data():
  rng = np.random.default_rng(0)
  return [[(rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=n).astype(np.float32))
           for n in sizes] for sizes in ([4], [4, 2], [4, 4, 1])]


def test_gradient_through_a_round_matches_finite_differences():
  data = _data()
  w0 = np.ones(3, np.float32)
  f = fedjit.to_jax(loss_after_round)
  grad = jax.grad(lambda lr: f(w0, lr, data))(0.05)
  eps = 1e-3
  with fedjit.backend("reference"):  # finite differences on the oracle
    plus = loss_after_round(w0, 0.05 + eps, data)
    minus = loss_after_round(w0, 0.05 - eps, data)
  fd = (float(plus) - float(minus)) / (2 * eps)
  np.testing.assert_allclose(grad, fd, rtol=1e-3)
  assert abs(fd) > 1.0  # the gradient is not trivially zero


def test_to_jax_is_jittable_and_matches_python_call():
  data = _data()
  w0 = np.ones(3, np.float32)
  f = jax.jit(fedjit.to_jax(loss_after_round))
  np.testing.assert_allclose(f(w0, 0.05, data), loss_after_round(w0, 0.05, data), rtol=1e-6)
  # Gradient with respect to the server weights, under jit.
  g = jax.jit(jax.grad(lambda w: fedjit.to_jax(loss_after_round)(w, 0.05, data)))(w0)
  assert g.shape == (3,) and np.all(np.isfinite(g))
