"""A thousand clients per round: Federated Averaging on a device-resident population.

Simulation at scale with fedjit's public API: 3,000 EMNIST-shaped clients
(784 features, 10 classes) whose dataset sizes follow a power law (a few
clients hold most of the data, as in LEAF), 1,000 of them sampled per round,
one local epoch of SGD (batch 20, learning rate 0.1) and weighted FedAvg of
a softmax regression model.

The clients are padded once into a `fedjit.simulation.Population` (grouped
by size into a few buckets, kept in device memory); each round passes only
the cohort's ids, and the whole round -- every client's local epoch and the
weighted average -- is one compiled XLA program. It compiles in the first
round and never again, though every round samples different clients.

Run:  python examples/thousand_clients.py [--clients 3000] [--per-round 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fedjit
from fedjit import learning, simulation

FEATURES, CLASSES, BATCH = 784, 10, 20


def make_client_data(num_clients: int = 3000, examples_per_client: int = 100,
                     seed: int = 0) -> simulation.ClientData:
  """EMNIST-shaped clients with power-law sizes; classes are separable.

  Every class has its own mean image; an example is its class's mean under
  Gaussian noise. Clients get `num_clients * examples_per_client` examples
  in all, split by `partitioners.size_skew(kind="power_law")`.
  """
  rng = np.random.default_rng(seed)
  total = num_clients * examples_per_client
  prototypes = rng.random((CLASSES, FEATURES), dtype=np.float32)
  y = rng.integers(0, CLASSES, total).astype(np.int32)
  x = prototypes[y] + rng.normal(0, 0.5, (total, FEATURES)).astype(np.float32)
  parts = simulation.partitioners.size_skew(total, num_clients, kind="power_law", seed=seed,
                                            power_law_exponent=2.5)
  clients = simulation.ClientData.from_partition((x, y), parts)
  return clients.preprocess(lambda ds: ds.batch(BATCH))


def build_trainer():
  """Weighted FedAvg of softmax regression, client SGD with learning rate 0.1."""
  model = learning.models.from_functions(
      init_fn=lambda key: {"w": jnp.zeros((FEATURES, CLASSES)), "b": jnp.zeros(CLASSES)},
      apply_fn=lambda p, x: x @ p["w"] + p["b"],
      loss_fn=lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, FEATURES]), (np.int32, [None])))
  return learning.algorithms.build_weighted_fed_avg(
      model, client_optimizer_fn=learning.optimizers.build_sgdm(learning_rate=0.1))


def main(num_clients: int = 3000, per_round: int = 1000, rounds: int = 10,
         examples_per_client: int = 100) -> dict:
  """Runs the simulation; returns each round's loss and seconds, and the population.

  Returns:
    A dict with `loss` and `seconds` (one entry per round; round 1's seconds
    include compilation), `examples` per round, and `population` (its repr).
  """
  train = make_client_data(num_clients, examples_per_client)
  trainer = build_trainer()
  start = time.perf_counter()
  population = simulation.Population(trainer, train)
  print(f"{population} in {time.perf_counter() - start:.1f} s "
        f"on {jax.default_backend()}")

  state = trainer.initialize()
  history = {"loss": [], "seconds": [], "examples": [], "population": repr(population)}
  for r in range(rounds):
    ids = simulation.sample_clients(train.client_ids, per_round, round_num=r)
    start = time.perf_counter()
    result = trainer.next(state, population.cohort(ids))
    state = result.state
    train_metrics = result.metrics["client_work"]["train"]
    loss = float(train_metrics["loss"])  # reading it waits for the round
    seconds = time.perf_counter() - start
    history["loss"].append(loss)
    history["seconds"].append(seconds)
    history["examples"].append(int(train_metrics["num_examples"]))
    print(f"round {r + 1:2d}: {per_round} clients, {history['examples'][-1]} examples, "
          f"loss {loss:.4f}, {seconds:.3f} s{' (with compilation)' if r == 0 else ''}")
  return history


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--clients", type=int, default=3000)
  parser.add_argument("--per-round", type=int, default=1000)
  parser.add_argument("--rounds", type=int, default=10)
  args = parser.parse_args()
  main(args.clients, args.per_round, args.rounds)
