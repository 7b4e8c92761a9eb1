"""Build your own federated learning algorithm: TFF's tutorial on fedjit.

This is the program of TFF's "Building Your Own Federated Learning Algorithm"
tutorial, with the TensorFlow code written in JAX and optax. The data is
EMNIST-shaped (784 float features, 10 classes) and made here: 10 clients with
unequal numbers of examples, in batches of 20 (the federated EMNIST loader
arrives with the simulation layer).

Run:  python examples/custom_fedavg.py [--rounds 15] [--backend vectorized]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fedjit

NUM_CLIENTS = 10
BATCH_SIZE = 20


# ---------------------------------------------------------------- input data

def make_client_data(num_clients=NUM_CLIENTS, seed=0):
  """EMNIST-shaped clients: flattened 28x28 images and labels in [0, 10).

  Each class has its own noisy mean image (pixels in [0, 1]) shared by all
  clients and the test data, so the task is learnable; clients hold
  between 25 and 150 examples and favour a few classes each.
  """
  prototypes = np.random.default_rng(2024).random((10, 784)).astype(np.float32)
  rng = np.random.default_rng(seed)
  clients = []
  for _ in range(num_clients):
    n = int(rng.integers(25, 151))
    favourite = rng.choice(10, size=3, replace=False)
    labels = np.where(rng.random(n) < 0.7, rng.choice(favourite, n), rng.integers(0, 10, n))
    pixels = prototypes[labels] + rng.normal(0.0, 1.0, (n, 784))
    clients.append((np.clip(pixels, 0.0, 1.0).astype(np.float32), labels.astype(np.int32)))
  return clients


def preprocess(pixels, labels):
  """Batches a client's examples as (features [b, 784], labels [b, 1])."""
  return [(pixels[i:i + BATCH_SIZE].reshape(-1, 784),
           labels[i:i + BATCH_SIZE].reshape(-1, 1))
          for i in range(0, len(labels), BATCH_SIZE)]


# ---------------------------------------------------------------------- model

def create_model_weights():
  """A single softmax layer (784 -> 10), Glorot-normal initialised, seed 0."""
  init = jax.nn.initializers.glorot_normal()
  return [init(jax.random.PRNGKey(0), (784, 10), jnp.float32),
          jnp.zeros((10,), jnp.float32)]


def forward_pass(weights, batch, mask):
  """Mean cross-entropy of a batch; `mask` marks the real examples."""
  x, y = batch
  logits = x @ weights[0] + weights[1]
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, y[:, 0])
  return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)


# ------------------------------------------------------------ jax blocks

def client_update(dataset, server_weights, client_optimizer):
  """Performs training (using the server model weights) on the client's dataset."""
  def step(state, batch, mask):
    weights, opt_state = state
    grads = jax.grad(forward_pass)(weights, batch, mask)
    updates, opt_state = client_optimizer.update(grads, opt_state, weights)
    return optax.apply_updates(weights, updates), opt_state

  initial = (server_weights, client_optimizer.init(server_weights))
  client_weights, _ = dataset.reduce(initial, step, with_mask=True)
  return client_weights


def server_update(mean_client_weights):
  """Updates the server model weights as the average of the client model weights."""
  return mean_client_weights


# ------------------------------------------------------- federated blocks

@fedjit.jax_computation
def server_init():
  return create_model_weights()


@fedjit.federated_computation
def initialize_fn():
  return fedjit.federated_value(server_init(), fedjit.SERVER)


jax_dataset_type = fedjit.SequenceType(
    (fedjit.TensorType(np.float32, [None, 784]), fedjit.TensorType(np.int32, [None, 1])))
model_weights_type = server_init.type_signature.result


@fedjit.jax_computation(jax_dataset_type, model_weights_type)
def client_update_fn(jax_dataset, server_weights):
  client_optimizer = optax.sgd(learning_rate=0.01)
  return client_update(jax_dataset, server_weights, client_optimizer)


@fedjit.jax_computation(model_weights_type)
def server_update_fn(mean_client_weights):
  return server_update(mean_client_weights)


federated_server_type = fedjit.FederatedType(model_weights_type, fedjit.SERVER)
federated_dataset_type = fedjit.FederatedType(jax_dataset_type, fedjit.CLIENTS)


@fedjit.federated_computation(federated_server_type, federated_dataset_type)
def next_fn(server_weights, federated_dataset):
  # Broadcast the server weights to the clients.
  server_weights_at_client = fedjit.federated_broadcast(server_weights)

  # Each client computes their updated weights.
  client_weights = fedjit.federated_map(
      client_update_fn, (federated_dataset, server_weights_at_client))

  # The server averages these updates.
  mean_client_weights = fedjit.federated_mean(client_weights)

  # The server updates its model.
  server_weights = fedjit.federated_map(server_update_fn, mean_client_weights)

  return server_weights


federated_algorithm = fedjit.templates.IterativeProcess(
    initialize_fn=initialize_fn,
    next_fn=next_fn
)


# ----------------------------------------------------------------- evaluation

def evaluate(server_state, dataset):
  """Centralized loss and accuracy of the server model on all examples."""
  x = np.concatenate([b[0] for b in dataset])
  y = np.concatenate([b[1] for b in dataset])[:, 0]
  logits = x @ np.asarray(server_state[0]) + np.asarray(server_state[1])
  loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
  accuracy = float((logits.argmax(-1) == y).mean())
  return loss, accuracy


def main(rounds: int = 15, backend: str = "vectorized") -> list[float]:
  clients = make_client_data()
  federated_train_data = [preprocess(*c) for c in clients]
  central_test = [b for c in make_client_data(seed=1) for b in preprocess(*c)]

  print(str(jax_dataset_type))
  print(str(model_weights_type))
  print(str(federated_algorithm.initialize.type_signature))
  print(str(federated_algorithm.next.type_signature))

  losses = []
  with fedjit.backend(backend):
    server_state = federated_algorithm.initialize()
    loss, acc = evaluate(server_state, central_test)
    print(f"initial: loss {loss:.4f}, accuracy {acc:.4f}")
    for round_num in range(1, rounds + 1):
      server_state = federated_algorithm.next(server_state, federated_train_data)
      loss, acc = evaluate(server_state, central_test)
      losses.append(loss)
      print(f"round {round_num:2d}: loss {loss:.4f}, accuracy {acc:.4f}")
  return losses


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--backend", choices=["vectorized", "reference"], default="vectorized")
  args = parser.parse_args()
  main(args.rounds, args.backend)
