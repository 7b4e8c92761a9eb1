"""Federated linear regression with a Keras model: a TFF blog program on fedjit.

The program of a TFF "decentralized learning" blog post: a one-unit Keras
`Dense` layer (zero-initialized) wrapped with `from_keras_model`, mean squared
error loss and mean absolute error metric, trained with TFF's deprecated
`build_federated_averaging_process` and a Keras SGD(0.02) client optimizer,
printing the round's metrics. Only the imports and the data differ from TFF:
the blog's two clients each hold three dict examples of `y = 2x`; here three
clients hold 60 noisy `(x, y)` points each (`y = 2x + noise`, x in [0, 3],
noise sd 0.1) in batches of 10, so that a few rounds visibly learn the slope. The blog's `input_spec=
train_data.element_spec` is `train_data.element_type_structure`, the name
ClientData has in TFF and in fedjit.

Run:  python examples/linear_regression_keras.py [--rounds 10]
"""

from __future__ import annotations

import argparse

import numpy as np

import fedjit  # imported before keras: fedjit selects Keras's JAX backend
import keras

EXAMPLES_PER_CLIENT = 60
BATCH_SIZE = 10


# 1. Client data: y = 2x + noise, in batches of (x [b, 1], y [b, 1]).
def create_tf_dataset_for_client(client_id):
  """A client's examples of `y = 2x + N(0, 0.1²)`, x uniform in [0, 3], batched."""
  rng = np.random.default_rng(list(client_id.encode()))
  x = rng.uniform(0.0, 3.0, (EXAMPLES_PER_CLIENT, 1)).astype(np.float32)
  y = (2.0 * x + rng.normal(0.0, 0.1, x.shape)).astype(np.float32)
  example_data = fedjit.simulation.Dataset.from_tensor_slices((x, y)).batch(BATCH_SIZE)
  return example_data


client_ids = ['client1', 'client2', 'client3']
train_data = fedjit.simulation.ClientData.from_clients_and_fn(
    client_ids, create_tf_dataset_for_client)
federated_train_data = [train_data.create_tf_dataset_for_client(cid) for cid in client_ids]


# 2. The model: linear regression.
def create_keras_model():
  return keras.models.Sequential([
      keras.layers.Dense(1, kernel_initializer='zeros')
  ])


def model_fn():
  keras_model = create_keras_model()
  return fedjit.learning.from_keras_model(
      keras_model,
      input_spec=train_data.element_type_structure,
      loss=keras.losses.MeanSquaredError(),
      metrics=[keras.metrics.MeanAbsoluteError()])


def main(rounds: int = 10) -> list[tuple[float, float]]:
  """Trains for `rounds` rounds; returns each round's (mean_absolute_error, loss)."""
  # 3. Federated Averaging.
  iterative_process = fedjit.learning.build_federated_averaging_process(
      model_fn,
      client_optimizer_fn=lambda: keras.optimizers.SGD(learning_rate=0.02))

  # 4. The training loop.
  state = iterative_process.initialize()

  history = []
  for round_num in range(1, rounds + 1):
    state, metrics = iterative_process.next(state, federated_train_data)
    print('round {}: metrics={}'.format(round_num, metrics))
    train = metrics['client_work']['train']
    history.append((float(train['mean_absolute_error']), float(train['loss'])))
  return history


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=10)
  args = parser.parse_args()
  main(args.rounds)
