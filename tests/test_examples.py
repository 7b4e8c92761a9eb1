"""The examples run, print the seed's strings, learn, and agree across backends."""

import numpy as np

from conftest import load_example


def test_custom_fedavg_prints_seed_types_and_loss_goes_down(capsys):
  example = load_example("custom_fedavg")
  losses = example.main(rounds=15, backend="vectorized")
  out = capsys.readouterr().out.splitlines()
  assert out[:4] == [
      "<float32[?,784],int32[?,1]>*",
      "<float32[784,10],float32[10]>",
      "( -> <float32[784,10],float32[10]>@SERVER)",
      "(<server_weights=<float32[784,10],float32[10]>@SERVER,"
      "federated_dataset={<float32[?,784],int32[?,1]>*}@CLIENTS> -> "
      "<float32[784,10],float32[10]>@SERVER)",
  ]
  assert len(losses) == 15 and sum(l.startswith("round") for l in out) == 15
  assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_custom_fedavg_both_backends_agree_for_15_rounds():
  example = load_example("custom_fedavg")
  data = [example.preprocess(*c) for c in example.make_client_data()]
  sizes = sorted(sum(len(b[1]) for b in c) for c in data)
  assert len(set(sizes)) > 1  # clients really hold unequal amounts of data
  process = example.federated_algorithm
  states = {}
  for backend in ("reference", "vectorized"):
    with example.fedjit.backend(backend):
      state = process.initialize()
      for _ in range(15):
        state = process.next(state, data)
    states[backend] = state
  for ref, vec in zip(states["reference"], states["vectorized"]):
    np.testing.assert_allclose(vec, ref, atol=1e-5)


def test_custom_fedavg_matches_numpy_fedavg():
  """One round equals an independent NumPy implementation of FedAvg."""
  example = load_example("custom_fedavg")
  data = [example.preprocess(*c) for c in example.make_client_data(num_clients=4)]
  state = example.federated_algorithm.initialize()
  new_state = example.federated_algorithm.next(state, data)

  def softmax_grad(w, b, x, y):
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return x.T @ p, p.sum(0)

  clients = []
  for batches in data:
    w, b = np.array(state[0], np.float64), np.array(state[1], np.float64)
    for x, y in batches:
      gw, gb = softmax_grad(w, b, x.astype(np.float64), y[:, 0])
      w, b = w - 0.01 * gw, b - 0.01 * gb
    clients.append((w, b))
  mean_w = np.mean([c[0] for c in clients], axis=0)
  mean_b = np.mean([c[1] for c in clients], axis=0)
  np.testing.assert_allclose(new_state[0], mean_w, atol=1e-5)
  np.testing.assert_allclose(new_state[1], mean_b, atol=1e-5)
