"""DP-FedAvg: federated averaging with central differential privacy.

200 clients hold a little data each (a 2-class problem on 5 features, made
here). Each round samples 40 of them without replacement, as
`fedjit.simulation.run_training` does; `fedjit.learning.dp_aggregator`
zeroes outsized updates, clips the rest adaptively, adds Gaussian noise
(noise multiplier 2) to their sum and divides by 40, all inside the
compiled round. Its `PrivacyAccountant` (Google's `dp-accounting`, for the
same fixed-size sampling) reports ε for δ = 1e-4 in every round's metrics.

Run:  python examples/dp_fedavg.py [--rounds 10]   (needs pip install 'fedjit[privacy]')
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np
import optax

import fedjit

NUM_CLIENTS, CLIENTS_PER_ROUND, FEATURES = 200, 40, 5


def make_clients(seed: int = 0) -> list[list[tuple[np.ndarray, np.ndarray]]]:
  """Each client: 8 examples in batches of 4; y = 1 where x · w* > 0."""
  rng = np.random.default_rng(seed)
  true_w = rng.normal(size=FEATURES)
  clients = []
  for _ in range(NUM_CLIENTS):
    x = rng.normal(size=(8, FEATURES)).astype(np.float32)
    y = (x @ true_w > 0).astype(np.int32)
    clients.append([(x[:4], y[:4]), (x[4:], y[4:])])
  return clients


def build_trainer(noise_seed: int | None = 0):
  model = fedjit.learning.models.from_functions(
      lambda key: {"w": jnp.zeros((FEATURES, 2)), "b": jnp.zeros(2)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, FEATURES]), (np.int32, [None])))
  aggregator = fedjit.learning.dp_aggregator(
      noise_multiplier=2.0, clients_per_round=CLIENTS_PER_ROUND,
      accountant=fedjit.aggregators.PrivacyAccountant(population_size=NUM_CLIENTS,
                                                      delta=1e-4),
      noise_seed=noise_seed)  # None in a deployment: a seed from the OS CSPRNG
  return fedjit.learning.algorithms.build_unweighted_fed_avg(
      model, client_optimizer_fn=fedjit.learning.optimizers.build_sgdm(0.5),
      server_optimizer_fn=fedjit.learning.optimizers.build_sgdm(1.0),
      model_aggregator=aggregator)


def main(rounds: int = 10, backend: str = "vectorized") -> list[float]:
  """Trains for `rounds` rounds and returns ε after each."""
  clients = make_clients()
  epsilons = []
  with fedjit.backend(backend):
    trainer = build_trainer()
    state = trainer.initialize()
    for r in range(rounds):
      ids = fedjit.simulation.sample_clients(range(NUM_CLIENTS), CLIENTS_PER_ROUND, r)
      result = trainer.next(state, [clients[i] for i in ids])
      state = result.state
      privacy = result.metrics["aggregator"]["zeroing"]["privacy"]
      loss = result.metrics["client_work"]["train"]["loss"]
      epsilons.append(privacy["epsilon"])
      print(f"round {r + 1:2d}  loss {loss:.4f}  epsilon {privacy['epsilon']:.3f} "
            f"(delta {privacy['delta']:g})")
  return epsilons


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=10)
  main(parser.parse_args().rounds)
