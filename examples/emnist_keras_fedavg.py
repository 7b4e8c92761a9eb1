"""TFF's "Federated Learning for Image Classification" headline program on fedjit.

The program of TFF's front-page example: a Keras softmax model on
EMNIST-shaped data, wrapped with `functional_model_from_keras`, trained with
`build_weighted_fed_avg` for five rounds, printing the clients' training
accuracy each round. Only the imports and the data loading differ from TFF:
until the federated EMNIST loader lands, three clients of EMNIST-shaped data
(784 pixels in [0, 1], labels 0-9) are made here.

Run:  python examples/emnist_keras_fedavg.py
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

import fedjit  # imported before keras: fedjit selects Keras's JAX backend
import keras


# Load simulation data.
def make_source(num_clients=3, seed=0):
  """Clients of 28x28 'pixels' with a class-dependent mean image, and labels."""
  prototypes = np.random.default_rng(2024).random((10, 784)).astype(np.float32)
  rng = np.random.default_rng(seed)
  clients = []
  for _ in range(num_clients):
    n = int(rng.integers(60, 120))
    label = rng.integers(0, 10, n).astype(np.int32)
    pixels = np.clip(prototypes[label] + rng.normal(0, 0.8, (n, 784)), 0, 1)
    clients.append({"pixels": pixels.reshape(n, 28, 28).astype(np.float32), "label": label})
  return clients


def client_data(source, n, repeat=10):
  """Flattened pixels and labels, repeated `repeat` times, in batches of 20."""
  e = source[n]
  x = np.tile(e["pixels"].reshape(-1, 784), (repeat, 1))
  y = np.tile(e["label"], repeat)
  return [(x[i:i + 20], y[i:i + 20]) for i in range(0, len(y), 20)]


def main(rounds: int = 5, repeat: int = 10) -> list[float]:
  source = make_source()
  # Pick a subset of client devices to participate in training.
  train_data = [client_data(source, n, repeat) for n in range(3)]
  element_spec = ((np.float32, [None, 784]), (np.int32, [None]))

  # Wrap a Keras model for use with fedjit.
  keras_model = keras.models.Sequential([
      keras.layers.Input(shape=(784,)),
      keras.layers.Dense(10, activation="softmax", kernel_initializer="zeros"),
  ])
  tff_model = fedjit.learning.models.functional_model_from_keras(
      keras_model,
      loss_fn=keras.losses.SparseCategoricalCrossentropy(),
      input_spec=element_spec,
      metrics_constructor=collections.OrderedDict(
          accuracy=keras.metrics.SparseCategoricalAccuracy))

  # Simulate a few rounds of training with the selected client devices.
  trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
      tff_model,
      client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(learning_rate=0.1))
  state = trainer.initialize()
  accuracies = []
  for _ in range(rounds):
    result = trainer.next(state, train_data)
    state = result.state
    metrics = result.metrics
    print(metrics['client_work']['train']['accuracy'])
    accuracies.append(float(metrics['client_work']['train']['accuracy']))
  return accuracies


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()
  main(args.rounds)
