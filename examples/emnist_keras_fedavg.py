"""TFF's "Federated Learning for Image Classification" headline program on fedjit.

The program of TFF's front-page example: a Keras softmax model on
EMNIST-shaped data, wrapped with `functional_model_from_keras`, trained with
`build_weighted_fed_avg` for five rounds, printing the clients' training
accuracy each round. It is TFF's program line for line, except for:

* the imports (`fedjit` before `keras`, which selects Keras's JAX backend);
* the data: instead of downloading federated EMNIST, `load_data` makes a
  `ClientData` of EMNIST-shaped clients here (28x28 `pixels` in [0, 1],
  `label` 0-9, 60-120 examples each);
* `jnp.reshape` for `tf.reshape` and `keras.activations.softmax` for
  `tf.nn.softmax`.

Run:  python examples/emnist_keras_fedavg.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import collections

import jax.numpy as jnp
import numpy as np

import fedjit  # imported before keras: fedjit selects Keras's JAX backend
import keras


def load_data(num_clients=10, seed=0):
  """EMNIST-shaped clients: each class has its own mean image, under noise."""
  prototypes = np.random.default_rng(2024).random((10, 28, 28))
  rng = np.random.default_rng(seed)
  clients = {}
  for k in range(num_clients):
    n = int(rng.integers(60, 120))
    label = rng.integers(0, 10, n).astype(np.int32)
    pixels = np.clip(prototypes[label] + rng.normal(0, 0.8, (n, 28, 28)), 0, 1)
    clients[f"f{k:04d}_00"] = {"pixels": pixels.astype(np.float32), "label": label}
  return fedjit.simulation.ClientData.from_arrays(clients), None


# Load simulation data.
source, _ = load_data()
def client_data(n, repeat=10):
  return source.create_tf_dataset_for_client(source.client_ids[n]).map(
      lambda e: (jnp.reshape(e['pixels'], [-1]), e['label'])
  ).repeat(repeat).batch(20)


def main(rounds: int = 5, repeat: int = 10) -> list[tuple[float, float]]:
  """Runs the program; returns each round's training (accuracy, loss).

  Args:
    rounds: federated rounds (TFF's program runs 5).
    repeat: local epochs, as `.repeat(10)` in TFF's program.
  """
  # Pick a subset of client devices to participate in training.
  train_data = [client_data(n, repeat) for n in range(3)]

  # Wrap a Keras model for use with fedjit.
  keras_model = keras.models.Sequential([
    keras.layers.Dense(
      10, keras.activations.softmax, input_shape=(784,), kernel_initializer='zeros')
  ])
  tff_model = fedjit.learning.models.functional_model_from_keras(
        keras_model,
        loss_fn=keras.losses.SparseCategoricalCrossentropy(),
        input_spec=train_data[0].element_spec,
        metrics_constructor=collections.OrderedDict(
          accuracy=keras.metrics.SparseCategoricalAccuracy))

  # Simulate a few rounds of training with the selected client devices.
  trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
    tff_model,
    client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(learning_rate=0.1))
  state = trainer.initialize()
  history = []
  for _ in range(rounds):
    result = trainer.next(state, train_data)
    state = result.state
    metrics = result.metrics
    print(metrics['client_work']['train']['accuracy'])
    train = metrics['client_work']['train']
    history.append((float(train['accuracy']), float(train['loss'])))
  return history


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()
  main(args.rounds)
