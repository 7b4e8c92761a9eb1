"""Deploying FedAvg on one machine: the process the server runs, and the data
of two clients (the README's "Deploying" walk-through).

    python examples/deploy_digits.py deploy-demo        # two clients' data folders

writes deploy-demo/client-1 and deploy-demo/client-2 (scikit-learn's digits,
split between them, in fedjit's client-data format). The server then runs

    fedjit server --process examples.deploy_digits:build_process ...

which calls `build_process()` below: FedAvg on softmax regression over the
64 pixels of a digit.
"""

from __future__ import annotations

import argparse
import os

import jax.numpy as jnp
import numpy as np
import optax

from fedjit import deploy, learning


def build_process():
  """FedAvg on softmax regression for 8x8 digits (64 features, 10 classes)."""
  model = learning.models.from_functions(
      lambda key: {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 64]), (np.int32, [None])))
  return learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.1))


def make_data(folder: str, clients: int = 2, batch_size: int = 16, seed: int = 0) -> list[str]:
  """Writes `clients` data folders under `folder`; returns their paths."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(y))
  paths = []
  for i, rows in enumerate(np.array_split(order, clients)):
    path = os.path.join(folder, f"client-{i + 1}")
    deploy.save_client_folder(path, {"x": x[rows], "y": y[rows]}, ["x", "y"],
                              batch_size=batch_size)
    paths.append(path)
  return paths


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("folder")
  parser.add_argument("--clients", type=int, default=2)
  args = parser.parse_args(argv)
  for path in make_data(args.folder, args.clients):
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
