"""How FedProx's Synthetic(α, β) can and cannot be evaluated: a model
trained on some clients is good on those clients' own test splits (FedProx's
protocol), and no better than chance, on average, on clients it never saw,
each of which labels with its own random model. A softmax regression fit
here in NumPy stands in for a federated model."""

from __future__ import annotations

import numpy as np
import pytest

from fedjit.simulation.datasets import synthetic


def _arrays(data):
  """All of a ClientData's examples, pooled: (x float64, y)."""
  xs, ys = [], []
  for cid in data.client_ids:
    ds = data.create_dataset_for_client(cid)
    if len(ds):
      ex = ds.batch(len(ds)).as_elements()[0]
      xs.append(ex["x"])
      ys.append(ex["y"])
  return np.concatenate(xs).astype(np.float64), np.concatenate(ys)


def _fit_softmax(x, y, steps=100, lr=0.5):
  """Softmax regression by full-batch gradient descent with momentum, on
  standardized features; returns the predict function."""
  mean, scale = x.mean(0), x.std(0) + 1e-8
  z = (x - mean) / scale
  w, b = np.zeros((x.shape[1], synthetic.NUM_CLASSES)), np.zeros(synthetic.NUM_CLASSES)
  mw, mb = np.zeros_like(w), np.zeros_like(b)
  onehot = np.eye(synthetic.NUM_CLASSES)[y]
  for _ in range(steps):
    logits = z @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    g = p / p.sum(1, keepdims=True) - onehot
    mw, mb = 0.9 * mw + z.T @ g / len(y), 0.9 * mb + g.mean(0)
    w, b = w - lr * mw, b - lr * mb
  return lambda v: np.argmax((v - mean) / scale @ w + b, axis=1)


@pytest.mark.parametrize("alpha,beta", [(0, 0), (1, 1)])
def test_the_model_mean_u_k_never_changes_a_label(alpha, beta):
  # u_k shifts all 10 logits by u_k * (1 + sum(x)): the labels depend only
  # on W_k - u_k and b_k - u_k, i.i.d. N(0, 1) for every client and every α.
  data = synthetic.generate(alpha, beta, num_clients=20, seed=5)
  assert alpha == 0 or np.abs(data.model_means).max() > 0.5
  for x, y, w, b, u in zip(data.x, data.y, data.weights, data.biases, data.model_means):
    np.testing.assert_array_equal(np.argmax(x @ (w - u) + (b - u), axis=1), y)


def test_most_clients_have_one_dominant_label():
  # x stays near v_k (trace of Sigma ~3.4 against |v_k|^2 ~120), so a
  # client's labels are mostly one class: a model is right on nearly all of
  # a new client's examples or on nearly none.
  data = synthetic.generate(1, 1, num_clients=200, seed=6)
  np.testing.assert_allclose(data.feature_variances.sum(), 3.39, atol=0.01)
  share = [np.bincount(y, minlength=10).max() / len(y) for y in data.y]
  assert np.median(share) > 0.85


def test_within_client_test_split_beats_chance_but_unseen_clients_average_chance():
  train, test = synthetic.load_data(1, 1, num_clients=30, seed=0)
  x, y = _arrays(train)
  predict = _fit_softmax(x, y)
  assert np.mean(predict(x) == y) > 0.85
  # FedProx's evaluation: the test split of the clients trained on.
  x_test, y_test = _arrays(test)
  assert np.mean(predict(x_test) == y_test) > 0.85  # chance is 0.10
  # 300 clients the model never saw, each with its own W_k, b_k.
  unseen = synthetic.generate(1, 1, num_clients=300, seed=99)
  acc = np.array([np.mean(predict(x) == y) for x, y in zip(unseen.x, unseen.y)])
  # The expectation is exactly 1/10 (standard error here about 0.015) ...
  assert abs(acc.mean() - 0.1) < 0.05
  # ... but most unseen clients get (almost) nothing right, so a pooled
  # accuracy over a few of them is usually below chance.
  assert np.median(acc) < 0.02
  assert np.mean(acc < 0.1) > 0.7


def test_held_out_clients_are_predictable_only_in_the_iid_variant():
  # iid=True: one W, b for all clients, so 10 held-out clients of the same
  # draw are as predictable as the 30 trained on.
  data = synthetic.generate(0, 0, iid=True, num_clients=40, seed=0)
  predict = _fit_softmax(np.concatenate(data.x[:30]), np.concatenate(data.y[:30]))
  x, y = np.concatenate(data.x[30:]), np.concatenate(data.y[30:])
  assert np.mean(predict(x) == y) > 0.8
