"""The `fedjit` command.

`fedjit simulate` trains a federated algorithm on a federated dataset and
writes metrics (JSON lines), a plot and a checkpoint into an output folder.
With no options it runs FedAvg on scikit-learn's handwritten digits, split
non-IID across 50 clients, which needs no download and takes about a minute
on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]

ALGORITHMS = ("fedavg", "fedprox", "fedadam", "fedsgd")
DATASETS = ("digits", "synthetic", "emnist", "mnist", "fashion_mnist")


def build_parser() -> argparse.ArgumentParser:
  """The argument parser of the `fedjit` command."""
  parser = argparse.ArgumentParser(prog="fedjit", description="fedjit: federated learning "
                                   "on JAX, one compiled program per round.")
  sub = parser.add_subparsers(dest="command", required=True)
  sim = sub.add_parser(
      "simulate", help="train a federated algorithm in simulation",
      description="Train a federated algorithm on a federated dataset, print each round, "
      "and write metrics.jsonl, curves.png and checkpoint.safetensors into the output "
      "folder. The defaults train FedAvg on scikit-learn's digits (no download).",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  sim.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="federated dataset; emnist needs --download (or a cached file), "
                   "mnist/fashion_mnist read IDX files from --data-dir")
  sim.add_argument("--algorithm", choices=ALGORITHMS, default="fedavg",
                   help="fedavg (weighted FedAvg), fedprox, fedadam (FedAvg with a server "
                   "Adam), fedsgd")
  sim.add_argument("--model", choices=("mlp", "softmax"), default="mlp",
                   help="a one-hidden-layer ReLU network (128 units) or softmax regression")
  sim.add_argument("--rounds", type=int, default=40, help="training rounds")
  sim.add_argument("--clients-per-round", type=int, default=10, help="clients sampled per round")
  sim.add_argument("--num-clients", type=int, default=50,
                   help="clients to split digits/synthetic/mnist into")
  sim.add_argument("--heldout-clients", type=int, default=10,
                   help="clients kept out of training, to evaluate on")
  sim.add_argument("--alpha", type=float, default=0.5,
                   help="Dirichlet label-skew concentration for split datasets (smaller is "
                   "more non-IID)")
  sim.add_argument("--client-epochs", type=int, default=1, help="local epochs per round")
  sim.add_argument("--batch-size", type=int, default=20, help="client batch size")
  sim.add_argument("--client-lr", type=float, default=0.1, help="client SGD learning rate")
  sim.add_argument("--server-lr", type=float, default=None,
                   help="server learning rate (default: 1.0 for fedavg/fedprox, 0.01 for "
                   "fedadam, 0.5 for fedsgd)")
  sim.add_argument("--mu", type=float, default=0.01, help="FedProx proximal strength")
  sim.add_argument("--seed", type=int, default=0, help="seed for data splits and sampling")
  sim.add_argument("--backend", choices=("vectorized", "reference"), default="vectorized",
                   help="vectorized: one compiled program per round; reference: client "
                   "by client in Python (slow; for debugging)")
  sim.add_argument("--output", type=pathlib.Path, default=None,
                   help="output folder (default: fedjit_output/<dataset>-<algorithm>-<time>)")
  sim.add_argument("--checkpoint-every", type=int, default=10,
                   help="save a checkpoint every this many rounds")
  sim.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --output")
  sim.add_argument("--data-dir", type=pathlib.Path, default=None,
                   help="dataset cache folder (default: $FEDJIT_DATA_DIR or ~/.cache/fedjit)")
  sim.add_argument("--download", action="store_true",
                   help="allow downloading the dataset (emnist)")
  sim.add_argument("--no-progress", action="store_true", help="no progress bar")
  return parser


def _load(args):
  """(train ClientData, held-out ClientData, input spec, number of classes)."""
  import numpy as np

  from fedjit.simulation import datasets

  if args.dataset == "digits":
    train, test = datasets.digits.load_data(num_clients=args.num_clients, alpha=args.alpha,
                                            seed=args.seed)
    spec = ((np.float32, [None, 64]), (np.int32, [None]))
    fmt = lambda e: (e["pixels"].reshape(-1, 64), e["label"])
    classes = 10
  elif args.dataset == "synthetic":
    train, test = datasets.synthetic.load_data(1.0, 1.0, num_clients=args.num_clients,
                                               seed=args.seed)
    spec = ((np.float32, [None, 60]), (np.int32, [None]))
    fmt = lambda e: (e["x"], e["y"])
    classes = 10
  elif args.dataset == "emnist":
    train, test = datasets.emnist.load_data(cache_dir=args.data_dir, download=args.download)
    spec = ((np.float32, [None, 784]), (np.int32, [None]))
    fmt = lambda e: (e["pixels"].reshape(-1, 784), e["label"])
    classes = 10
  else:
    module = getattr(datasets, args.dataset)
    train, test = module.load_data(args.data_dir, num_clients=args.num_clients,
                                   alpha=args.alpha, seed=args.seed)
    spec = ((np.float32, [None, 784]), (np.int32, [None]))
    fmt = lambda e: (e["pixels"].reshape(-1, 784), e["label"])
    classes = 10
  return train, test, spec, fmt, classes


def _model(kind: str, spec, classes: int):
  import jax
  import jax.numpy as jnp
  import optax

  from fedjit import learning

  features = spec[0][1][1]

  def init(key):
    if kind == "softmax":
      return {"w": jnp.zeros((features, classes)), "b": jnp.zeros(classes)}
    k1, k2 = jax.random.split(key)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"w1": glorot(k1, (features, 128)), "b1": jnp.zeros(128),
            "w2": glorot(k2, (128, classes)), "b2": jnp.zeros(classes)}

  def apply(p, x):
    if kind == "softmax":
      return x @ p["w"] + p["b"]
    return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

  accuracy = learning.metrics.MeanMetric(
      "accuracy", lambda y, logits: (jnp.argmax(logits, -1) == y).astype(jnp.float32))
  return learning.models.from_functions(
      init, apply, lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=spec, metrics=[accuracy])


def _process(args, model):
  from fedjit.learning import algorithms, optimizers

  client_opt = optimizers.build_sgdm(args.client_lr)
  if args.algorithm == "fedavg":
    return algorithms.build_weighted_fed_avg(
        model, client_opt, server_optimizer_fn=optimizers.build_sgdm(args.server_lr or 1.0))
  if args.algorithm == "fedprox":
    return algorithms.build_fed_prox(
        model, args.mu, client_opt, server_optimizer_fn=optimizers.build_sgdm(args.server_lr or 1.0))
  if args.algorithm == "fedadam":
    return algorithms.build_weighted_fed_avg(
        model, client_opt, server_optimizer_fn=optimizers.build_adam(args.server_lr or 0.01))
  return algorithms.build_fed_sgd(model, server_optimizer_fn=optimizers.build_sgdm(
      args.server_lr or 0.5))


def simulate(args) -> dict:
  """Runs `fedjit simulate` with parsed arguments; returns the final metrics."""
  import fedjit
  from fedjit import simulation

  train, test, spec, fmt, classes = _load(args)
  if args.heldout_clients and args.dataset not in ("emnist",):
    train_clients, heldout = train.train_test_client_split(args.heldout_clients, seed=args.seed)
    # Held-out clients are evaluated on all their data (their train and test parts).
    eval_ids = heldout.client_ids
    eval_sets = [d for cid in eval_ids for d in (heldout.create_dataset_for_client(cid),
                                                test.create_dataset_for_client(cid)) if len(d)]
    label = f"{len(eval_ids)} held-out clients"
  else:
    train_clients = train
    eval_sets = [d for d in test.datasets() if len(d)]
    label = f"the test split of {len(test)} clients"
  batch, epochs = args.batch_size, args.client_epochs
  train_data = train_clients.preprocess(lambda ds: ds.repeat(epochs).batch(batch).map(fmt))
  test_batches = [b for d in eval_sets for b in d.batch(256).map(fmt)]

  model = _model(args.model, spec, classes)
  process = _process(args, model)
  output = args.output or pathlib.Path("fedjit_output") / (
      f"{args.dataset}-{args.algorithm}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
  print(f"fedjit simulate: {args.algorithm} on {args.dataset} ({len(train_clients)} training "
        f"clients, {args.clients_per_round} per round, {args.rounds} rounds, "
        f"{args.backend} backend); evaluating on {label}.")
  print(f"Writing metrics, plot and checkpoints to {output}/")
  with fedjit.backend(args.backend):
    result = simulation.run_training(
        process, train_data, rounds=args.rounds, clients_per_round=args.clients_per_round,
        evaluation=simulation.build_central_evaluation(model, test_batches), seed=args.seed,
        output_dir=output, checkpoint_every=args.checkpoint_every, resume=args.resume,
        progress=not args.no_progress and sys.stderr.isatty(), print_fn=print)
  final = result.history[-1] if result.history else {}
  acc = final.get("eval/accuracy")
  if acc is not None:
    print(f"Final accuracy on {label}: {acc:.4f} (chance: {1 / classes:.2f})")
  print(f"Metrics: {output / 'metrics.jsonl'}")
  print(f"Plot:    {output / 'curves.png'}")
  return final


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the `fedjit` console script."""
  args = build_parser().parse_args(argv)
  if args.command == "simulate":
    simulate(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
