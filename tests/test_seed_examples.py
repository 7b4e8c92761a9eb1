"""The seed 003 (TFF's front-page Keras program), seed 004 (Keras linear
regression) and seed 001 (three-client CNN) examples run, print the seeds'
lines, learn, and compute what the seeds compute."""

import re

import numpy as np
import pytest

from conftest import load_example

import fedjit  # before keras: fedjit selects Keras's JAX backend
import keras

_NUMBER = r"(?:np\.\w+\()?([-+0-9.e]+)\)?"


def _printed(line, name):
  """The value of metric `name` in a printed metrics dict."""
  return float(re.search(rf"'{name}': {_NUMBER}", line).group(1))


# ---------------------------------------- seed 003: TFF's front-page program

def test_emnist_keras_fedavg_prints_accuracy_and_learns(capsys):
  example = load_example("emnist_keras_fedavg")
  history = example.main(rounds=4, repeat=1)
  lines = capsys.readouterr().out.splitlines()
  # The seed prints metrics['client_work']['train']['accuracy'] once a round.
  assert len(lines) == len(history) == 4
  for line, (accuracy, _) in zip(lines, history):
    assert float(line) == pytest.approx(accuracy, rel=1e-6)
  accuracies, losses = zip(*history)
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert accuracies[-1] > accuracies[0] + 0.15, accuracies  # chance is 0.1


def test_emnist_keras_fedavg_data_is_the_seeds_pipeline():
  """Three clients of `.repeat(10).batch(20)` over flattened 784-pixel images."""
  example = load_example("emnist_keras_fedavg")
  assert str(example.client_data(0).element_spec) == "<float32[?,784],int32[?]>"
  source = example.source
  for n in range(3):
    raw = source.create_tf_dataset_for_client(source.client_ids[n]).numpy()
    batches = list(example.client_data(n))
    assert [len(y) for _, y in batches[:-1]] == [20] * (len(batches) - 1)
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    np.testing.assert_array_equal(x, np.tile(raw["pixels"].reshape(-1, 784), (10, 1)))
    np.testing.assert_array_equal(y, np.tile(raw["label"], 10))


# ------------------------------------------------- seed 004: linear regression

def test_linear_regression_learns_and_prints_seed_lines(capsys):
  example = load_example("linear_regression_keras")
  with pytest.warns(DeprecationWarning, match="build_federated_averaging_process"):
    history = example.main(rounds=5)
  lines = capsys.readouterr().out.splitlines()
  assert len(history) == len(lines) == 5
  for k, (line, (mae, loss)) in enumerate(zip(lines, history), start=1):
    assert re.fullmatch(
        rf"round {k}: metrics=\{{'distributor': \(\), 'client_work': \{{'train': "
        rf"\{{.*\}}\}}, 'aggregator': .*\}}", line), line
    assert _printed(line, "loss") == pytest.approx(loss, rel=1e-6)
    assert _printed(line, "mean_absolute_error") == pytest.approx(mae, rel=1e-6)
    assert _printed(line, "num_examples") == 3 * 60
  maes, losses = zip(*history)
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert all(b < a for a, b in zip(maes, maes[1:])), maes
  assert losses[-1] < 0.1 * losses[0] and maes[-1] < 0.3 * maes[0], history


def test_linear_regression_round_matches_numpy_fedavg():
  """One round of the seed's process equals FedAvg of SGD(0.02) written in NumPy."""
  example = load_example("linear_regression_keras")
  with pytest.warns(DeprecationWarning):
    process = fedjit.learning.build_federated_averaging_process(
        example.model_fn,
        client_optimizer_fn=lambda: keras.optimizers.SGD(learning_rate=0.02))
  data = example.federated_train_data
  state, metrics = process.next(process.initialize(), data)

  clients, loss_sum, abs_sum, count = [], 0.0, 0.0, 0
  for batches in data:
    w, b = 0.0, 0.0  # the zero-initialized kernel; Keras biases start at zero
    for x, y in batches:
      x, y = x[:, 0].astype(np.float64), y[:, 0].astype(np.float64)
      r = w * x + b - y
      loss_sum, abs_sum, count = loss_sum + np.sum(r**2), abs_sum + np.sum(abs(r)), count + len(r)
      w, b = w - 0.02 * 2 * np.mean(r * x), b - 0.02 * 2 * np.mean(r)
    clients.append((w, b, sum(len(y) for _, y in batches)))
  n = sum(c[2] for c in clients)
  expected_w = sum(c[0] * c[2] for c in clients) / n
  expected_b = sum(c[1] * c[2] for c in clients) / n

  kernel, bias = process.get_model_weights(state).trainable
  np.testing.assert_allclose(np.asarray(kernel), [[expected_w]], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(bias), [expected_b], rtol=1e-5, atol=1e-7)
  train = metrics["client_work"]["train"]
  assert float(train["loss"]) == pytest.approx(loss_sum / count, rel=1e-5)
  assert float(train["mean_absolute_error"]) == pytest.approx(abs_sum / count, rel=1e-5)


# ------------------------------------------------------- seed 001: three-client CNN

def test_cnn_three_clients_learns_and_prints_seed_lines(capsys):
  example = load_example("cnn_three_clients")
  history = example.main(rounds=4)
  losses, accuracies = zip(*history)
  lines = capsys.readouterr().out.splitlines()
  assert lines[:2] == ["Train shape: (288, 32, 32, 3), (288, 10)",
                       "Test shape: (500, 32, 32, 3), (500, 10)"]
  expected = []
  for k, accuracy in enumerate(accuracies, start=1):
    expected += [f"Round {k}/4", f"Global model accuracy after round {k}: {accuracy:.4f}"]
  assert lines[2:] == expected
  assert len(accuracies) == 4
  assert accuracies[-1] >= 0.3, accuracies  # chance is 0.1
  assert accuracies[-1] > accuracies[0] + 0.15, accuracies
  # The seed's `global_model.evaluate` loss: about ln(10) = 2.30 at chance.
  assert all(b < a for a, b in zip(losses, losses[1:])), losses
  assert losses[-1] < losses[0] - 0.2, losses


def _one_round_against_keras_fits(example, process, keras_optimizer_fn):
  """Max |fedjit - seed| per weight after one round on three clients of 80
  examples (batches of 32, 32, 16), where the seed's round is: each client
  fits a copy of the global Keras model for one unshuffled epoch, and the
  new global weights are the mean of the clients' weights."""
  keras.utils.set_random_seed(0)
  x, y = example.make_cifar10_like(3 * 80, seed=0)
  client_data = example.split_data(x, y, 3)
  state = process.initialize()
  initial = [np.asarray(w) for w in process.get_model_weights(state).trainable]
  state, _ = process.next(state, [example.batches(cx, cy) for cx, cy in client_data])
  got = process.get_model_weights(state).trainable

  local_weights = []
  for cx, cy in client_data:
    local_model = example.create_model()
    local_model.compile(optimizer=keras_optimizer_fn(), loss="categorical_crossentropy")
    local_model.set_weights(initial)
    local_model.fit(cx, cy, epochs=1, batch_size=32, shuffle=False, verbose=0)
    local_weights.append(local_model.get_weights())
  averaged = [np.mean([w[i] for w in local_weights], axis=0) for i in range(len(initial))]
  moved = max(np.max(np.abs(a - w0)) for a, w0 in zip(averaged, initial))
  assert moved > 1e-4  # the round really changed the weights
  return [float(np.max(np.abs(np.asarray(g) - a))) for g, a in zip(got, averaged)]


def test_cnn_round_is_mean_of_keras_fits_with_sgd():
  """Masking, loss and unweighted averaging reproduce the seed's Keras loop."""
  example = load_example("cnn_three_clients")
  sgd = lambda: keras.optimizers.SGD(learning_rate=0.05)
  process = fedjit.learning.algorithms.build_unweighted_fed_avg(
      example.model_fn(), client_optimizer_fn=sgd,
      server_optimizer_fn=keras.optimizers.SGD(learning_rate=1.0))
  differences = _one_round_against_keras_fits(example, process, sgd)
  assert max(differences) < 1e-6, differences


def test_cnn_round_is_mean_of_keras_fits_with_the_seeds_adam():
  example = load_example("cnn_three_clients")
  process = example.build_process(example.model_fn())
  differences = _one_round_against_keras_fits(example, process, keras.optimizers.Adam)
  assert max(differences) < 1e-6, differences
