"""A Keras CNN trained by three clients with weight averaging, on fedjit.

The program of a Korean blog post introducing federated learning: the
CIFAR-10 training set is split equally between three clients; each round,
every client trains the global CNN for one epoch with Adam (batch size 32),
the server replaces the global weights by the mean of the clients' weights,
and the global model's accuracy on the test set is printed.

On fedjit that loop is `build_unweighted_fed_avg` with the server optimizer
SGD(1.0): the clients' deltas `w - wᵢ` are averaged with equal weights and
applied as `w ← w - mean(w - wᵢ) = mean(wᵢ)`, exactly the blog's averaging.
Each client's Adam state starts afresh every round, as the blog's freshly
built local models do, and fedjit converts Keras's Adam operation for
operation (tests/test_seed_examples.py checks a round against the blog's
Keras `fit` loop). The blog's `model.compile(...)` line stays: fedjit calls
the model statelessly and ignores what `compile` sets up. The blog's
"Training on client k" lines are gone: all clients train inside one
compiled round.

Only the imports and the data differ: instead of downloading CIFAR-10, the
data is CIFAR-10-shaped and made here (32x32x3 floats in [0, 1], 10 one-hot
classes): each class has its own colour and coarse spatial pattern, hidden
under per-pixel noise and a random brightness shift, so a CNN can learn it.

Run:  python examples/cnn_three_clients.py [--rounds 10]
"""

from __future__ import annotations

import argparse

import numpy as np

import fedjit  # imported before keras: fedjit selects Keras's JAX backend
import keras
from keras import layers, models

NUM_CLASSES = 10
BATCH_SIZE = 32
CONTRAST = 0.8  # how far apart the class patterns are, in [0, 1]
NOISE = 0.6  # the standard deviation of the per-pixel noise


def make_cifar10_like(num_examples, seed):
  """CIFAR-10-shaped images and one-hot labels with a class-dependent look.

  Each class has a fixed 4x4 pattern of colours (the same for every split)
  upsampled to 32x32; an image is its class pattern at `CONTRAST` around
  mid-grey, plus a random brightness shift and per-pixel Gaussian noise of
  standard deviation `NOISE`, clipped to [0, 1].
  """
  patterns = np.random.default_rng(1234).random((NUM_CLASSES, 4, 4, 3))
  patterns = patterns.repeat(8, axis=1).repeat(8, axis=2)  # [10, 32, 32, 3]
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, NUM_CLASSES, num_examples)
  images = (0.5 + CONTRAST * (patterns[labels] - 0.5)
            + rng.normal(0.0, 0.15, (num_examples, 1, 1, 1))
            + rng.normal(0.0, NOISE, (num_examples, 32, 32, 3)))
  x = np.clip(images, 0.0, 1.0).astype(np.float32)
  y = keras.utils.to_categorical(labels, NUM_CLASSES).astype(np.float32)
  return x, y


def split_data(x, y, num_clients):
  """Equal, consecutive shards of the training data, one per client."""
  client_data = []
  shard_size = len(x) // num_clients
  for i in range(num_clients):
    start = i * shard_size
    end = start + shard_size
    client_data.append((x[start:end], y[start:end]))
  return client_data


def batches(x, y, batch_size=BATCH_SIZE, rng=None):
  """One epoch of (x, y) batches, shuffled by `rng` as Keras `fit` does."""
  order = np.arange(len(x)) if rng is None else rng.permutation(len(x))
  return [(x[order[i:i + batch_size]], y[order[i:i + batch_size]])
          for i in range(0, len(x), batch_size)]


def create_model():
  """The blog's CNN, compiled as the blog compiles it."""
  model = models.Sequential([
      layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)),
      layers.MaxPooling2D((2, 2)),
      layers.Conv2D(64, (3, 3), activation='relu'),
      layers.MaxPooling2D((2, 2)),
      layers.Flatten(),
      layers.Dense(64, activation='relu'),
      layers.Dense(10, activation='softmax')
  ])
  model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
  return model


def model_fn():
  """The CNN as a fedjit model: categorical cross-entropy, accuracy metric."""
  return fedjit.learning.models.from_keras_model(
      create_model(),
      loss=keras.losses.CategoricalCrossentropy(),
      input_spec=((np.float32, [None, 32, 32, 3]), (np.float32, [None, NUM_CLASSES])),
      metrics=[keras.metrics.CategoricalAccuracy(name='accuracy')])


def build_process(model):
  """The blog's round: clients train with Adam, the server takes the mean weights.

  Unweighted FedAvg applies the mean client delta with SGD(1.0), so the new
  global weights are exactly the mean of the clients' trained weights.
  """
  return fedjit.learning.algorithms.build_unweighted_fed_avg(
      model,
      client_optimizer_fn=lambda: keras.optimizers.Adam(),
      server_optimizer_fn=keras.optimizers.SGD(learning_rate=1.0))


def main(rounds: int = 10, examples_per_client: int = 96, num_clients: int = 3,
         test_examples: int = 500, seed: int = 0) -> list[tuple[float, float]]:
  """Runs `rounds` rounds of federated training; returns the test (loss, accuracy).

  Args:
    rounds: the number of federated rounds (one local epoch each).
    examples_per_client: each client's share of the training data.
    num_clients: the number of clients.
    test_examples: the size of the test set for centralized evaluation.
    seed: the seed of the data, the shuffling and Keras's initializers.

  Returns:
    The global model's test `(loss, accuracy)` after each round, as the
    blog's `global_model.evaluate` gives them.
  """
  keras.utils.set_random_seed(seed)
  x_train, y_train = make_cifar10_like(examples_per_client * num_clients, seed)
  x_test, y_test = make_cifar10_like(test_examples, seed + 1)
  print(f"Train shape: {x_train.shape}, {y_train.shape}")
  print(f"Test shape: {x_test.shape}, {y_test.shape}")
  client_data = split_data(x_train, y_train, num_clients)
  test_batches = batches(x_test, y_test, batch_size=250)

  model = model_fn()
  trainer = build_process(model)

  state = trainer.initialize()
  shuffle = np.random.default_rng(seed)
  history = []
  for round_num in range(rounds):
    print(f"Round {round_num + 1}/{rounds}")
    train_data = [batches(x, y, rng=shuffle) for x, y in client_data]
    state, _ = trainer.next(state, train_data)
    metrics = fedjit.learning.evaluate(model, trainer.get_model_weights(state),
                                       test_batches)
    loss, accuracy = float(metrics['loss']), float(metrics['accuracy'])
    print(f"Global model accuracy after round {round_num + 1}: {accuracy:.4f}")
    history.append((loss, accuracy))
  return history


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--examples_per_client", type=int, default=96)
  args = parser.parse_args()
  main(args.rounds, args.examples_per_client)
