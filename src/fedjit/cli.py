"""The `fedjit` command.

`fedjit simulate` trains a federated algorithm on a federated dataset and
writes metrics (JSON lines), a plot and a checkpoint into an output folder.
With no options it runs FedAvg on scikit-learn's handwritten digits, split
non-IID across 50 clients, which needs no download and takes about 10
seconds on a 2-core CPU (most of it JAX's start-up and compilation).

Bad input (a missing or corrupt dataset file, more clients per round than
there are clients, a checkpoint written with another seed) ends with one
line, `fedjit: error: ...`, on stderr and exit status 1; bad options exit
with status 2, as argparse's own errors do. (A checkpoint that does not fit
the options given says what wrote it, and adds a second line of detail.)
An output folder that already holds a run is continued only with `--resume`
and replaced only with `--overwrite`. Training that goes wrong without
failing (NaN updates, an exploding loss, labels out of range) is reported
once per kind as `fedjit: warning: ...` on stderr.

Rounds are numbered from 1 on the console, in `metrics.jsonl` and on the
plot's x axis.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
import warnings
from typing import Sequence

__all__ = ["main", "build_parser"]

ALGORITHMS = ("fedavg", "fedprox", "fedadam", "fedsgd")
DATASETS = ("digits", "synthetic", "emnist", "mnist", "fashion_mnist")


def _count(minimum: int):
  """An argparse type: an int >= `minimum`."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value
  parse.__name__ = "int"  # argparse names the type in "invalid int value" messages
  return parse


class _UsageError(Exception):
  """Options that cannot work together with the chosen data (exit status 2)."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Appends "(default: X)" to an option's help, unless the help already
  says its default or there is none worth saying (None, or a flag's False)."""

  def _get_help_string(self, action):
    text = action.help or ""
    if "(default" in text or any(action.default is d for d in (None, False, argparse.SUPPRESS)):
      return text
    return super()._get_help_string(action)


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
      formatter_class=_HelpFormatter)
  sim.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="federated dataset; emnist needs --download (or a cached file), "
                   "mnist/fashion_mnist read IDX files from --data-dir")
  sim.add_argument("--algorithm", choices=ALGORITHMS, default="fedavg",
                   help="fedavg (weighted FedAvg), fedprox, fedadam (FedAvg with a server "
                   "Adam), fedsgd")
  sim.add_argument("--model", choices=("mlp", "softmax"), default="mlp",
                   help="a one-hidden-layer ReLU network (128 units) or softmax regression")
  sim.add_argument("--rounds", type=_count(1), default=40, help="training rounds")
  sim.add_argument("--clients-per-round", type=_count(1), default=10,
                   help="clients sampled per round")
  sim.add_argument("--num-clients", type=_count(1), default=50,
                   help="clients to split digits/synthetic/mnist/fashion_mnist into")
  sim.add_argument("--heldout-clients", type=_count(0), default=None,
                   help="clients kept out of training, to evaluate on (default: 10; 0 for "
                   "synthetic, evaluated as in FedProx on every client's own test split, "
                   "since each synthetic client labels with its own random model; not for "
                   "emnist, which has its own test split)")
  sim.add_argument("--alpha", type=float, default=0.5,
                   help="Dirichlet label-skew concentration for split datasets (smaller is "
                   "more non-IID)")
  sim.add_argument("--client-epochs", type=_count(1), default=1, help="local epochs per round")
  sim.add_argument("--batch-size", type=_count(1), default=20, help="client batch size")
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
  sim.add_argument("--checkpoint-every", type=_count(0), default=10,
                   help="save a checkpoint every this many rounds (0: only at the end)")
  again = sim.add_mutually_exclusive_group()
  again.add_argument("--resume", action="store_true",
                     help="continue from the checkpoint in the --output folder (which --resume "
                     "requires); --rounds counts every round, those already done included")
  again.add_argument("--overwrite", action="store_true",
                     help="replace the run already in the --output folder (its checkpoint, "
                     "metrics, plot and tensorboard folder); without --resume or --overwrite, "
                     "a folder that holds a run is refused")
  sim.add_argument("--data-dir", type=pathlib.Path, default=None,
                   help="dataset cache folder, where downloads go; mnist/fashion_mnist also "
                   "read IDX files found directly in it (default: $FEDJIT_DATA_DIR, or "
                   "~/.cache/fedjit/datasets)")
  sim.add_argument("--download", action="store_true",
                   help="allow downloading the dataset when it is not in the cache "
                   "(emnist, mnist, fashion_mnist)")
  sim.add_argument("--no-progress", action="store_true", help="no progress bar")
  _add_certs_parser(sub)
  _add_client_parser(sub)
  _add_server_parser(sub)
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
                                   alpha=args.alpha, seed=args.seed, download=args.download)
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


def _check_output(args, output: pathlib.Path) -> bool:
  """Checks what `output` holds against --resume/--overwrite/--rounds before
  any data is loaded; False when there is nothing to train."""
  from fedjit.simulation._training import (CHECKPOINT, RunExistsError, _checkpoint_rounds,
                                           _run_files)
  if not args.resume:
    found = _run_files(output)
    if found and not args.overwrite:
      raise RunExistsError(f"{output} already holds a run ({', '.join(found)}); pass --resume "
                           f"to continue it or --overwrite to replace it")
    return True
  done = _checkpoint_rounds(output)
  if done is not None and args.rounds < done:
    raise ValueError(f"{output / CHECKPOINT} already has {done} rounds; pass --rounds > {done} "
                     f"to train more")
  if done is not None and args.rounds == done:
    print(f"{output} already has {done} rounds: nothing to train (pass --rounds > {done} to "
          f"train more)")
    return False
  return True


def _run_info(args) -> dict:
  """What the checkpoint records about this run (run_training adds the seed,
  the clients per round and the model's shapes)."""
  info = {"algorithm": args.algorithm, "dataset": args.dataset, "model": args.model}
  if args.dataset != "emnist":  # the options of the split; emnist has its own clients
    info.update(num_clients=args.num_clients, alpha=args.alpha,
                heldout_clients=args.heldout_clients)
  return info


def _stderr_line(text: str) -> None:
  """A line on stderr that does not tear a tqdm progress bar."""
  try:
    from tqdm.auto import tqdm
    tqdm.write(text, file=sys.stderr)
  except ImportError:
    print(text, file=sys.stderr)


def _show_training_warnings():
  """A `warnings.showwarning` that prints TrainingWarnings as
  `fedjit: warning: ...` (no file and line of fedjit's code) and leaves the
  others to the one it replaces."""
  from fedjit.simulation import TrainingWarning
  previous = warnings.showwarning

  def show(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, TrainingWarning):
      _stderr_line(f"fedjit: warning: {_for_cli(str(message))}")
    else:
      previous(message, category, filename, lineno, file, line)
  return show


def simulate(args) -> dict:
  """Runs `fedjit simulate` with parsed arguments; returns the final metrics."""
  import fedjit
  from fedjit import simulation
  from fedjit.simulation._training import CHECKPOINT

  if args.heldout_clients is None:
    args.heldout_clients = 0 if args.dataset == "synthetic" else 10
  output = args.output or pathlib.Path("fedjit_output") / (
      f"{args.dataset}-{args.algorithm}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
  if not _check_output(args, output):
    return {}
  train, test, spec, fmt, classes = _load(args)
  if args.heldout_clients and args.dataset not in ("emnist",):
    if args.heldout_clients >= len(train):
      raise _UsageError(f"--heldout-clients {args.heldout_clients} leaves no training client: "
                        f"{args.dataset} has {len(train)} clients (--num-clients). Use fewer "
                        f"held-out clients or more clients.")
    train_clients, heldout = train.train_test_client_split(args.heldout_clients, seed=args.seed)
    # Held-out clients are evaluated on all their data (their train and test parts).
    eval_ids = heldout.client_ids
    eval_sets = [d for cid in eval_ids for d in (heldout.create_dataset_for_client(cid),
                                                test.create_dataset_for_client(cid)) if len(d)]
    label = f"{len(eval_ids)} held-out clients"
    if args.dataset == "synthetic":
      print("fedjit: warning: every Synthetic(α, β) client labels with its own random "
            "model, so on held-out clients any model scores 0.10 on average and usually "
            "less (most clients have one dominant label); --heldout-clients 0 evaluates on "
            "every client's own test split, as FedProx does.", file=sys.stderr)
  else:
    train_clients = train
    eval_sets = [d for d in test.datasets() if len(d)]
    label = f"the test split of {len(test)} clients"
  if args.clients_per_round > len(train_clients):
    held = (f" ({len(train)} clients, {args.heldout_clients} held out for evaluation)"
            if train_clients is not train else "")
    raise _UsageError(f"--clients-per-round {args.clients_per_round} is more than the "
                      f"{len(train_clients)} training clients of {args.dataset}{held}. Use "
                      f"--clients-per-round {len(train_clients)} or less.")
  batch, epochs = args.batch_size, args.client_epochs
  train_data = train_clients.preprocess(lambda ds: ds.repeat(epochs).batch(batch).map(fmt))
  test_batches = [b for d in eval_sets for b in d.batch(256).map(fmt)]

  model = _model(args.model, spec, classes)
  process = _process(args, model)
  print(f"fedjit simulate: {args.algorithm} on {args.dataset} ({len(train_clients)} training "
        f"clients, {args.clients_per_round} per round, {args.rounds} rounds, "
        f"{args.backend} backend); evaluating on {label}.")
  print(f"Writing metrics, plot and checkpoints to {output}/")
  if args.resume and not (output / CHECKPOINT).exists():
    print(f"fedjit: warning: --resume, but there is no checkpoint in {output}: starting "
          f"from round 1.", file=sys.stderr)
  try:
    with fedjit.backend(args.backend), warnings.catch_warnings():
      warnings.filterwarnings("ignore", "resume=True, but there is no checkpoint")  # said above
      warnings.showwarning = _show_training_warnings()  # catch_warnings puts it back
      result = simulation.run_training(
          process, train_data, rounds=args.rounds, clients_per_round=args.clients_per_round,
          evaluation=simulation.build_central_evaluation(model, test_batches), seed=args.seed,
          output_dir=output, checkpoint_every=args.checkpoint_every, resume=args.resume,
          overwrite=args.overwrite, run_info=_run_info(args),
          progress=not args.no_progress and sys.stderr.isatty(), print_fn=print)
  except KeyboardInterrupt:
    print(f"\nInterrupted. Continue from the last checkpoint with the same options and "
          f"--resume --output {output}", file=sys.stderr)
    raise
  final = result.history[-1] if result.history else {}
  acc = final.get("eval/accuracy")
  if acc is not None:
    print(f"Final accuracy on {label}: {acc:.4f} (chance: {1 / classes:.2f})")
  print(f"Metrics: {output / 'metrics.jsonl'}")
  if result.plot_path is not None:
    print(f"Plot:    {result.plot_path}")
  else:
    print("Plot:    not drawn (matplotlib is not installed: pip install 'fedjit[plot]')")
  return final


def _add_certs_parser(sub) -> None:
  certs = sub.add_parser(
      "certs", help="make deployment certificates and manage the allowed client keys",
      description="Certificates and keys for fedjit.deploy: a certificate authority, the "
      "server's TLS certificate, and per client a TLS certificate (mutual TLS) and an "
      "Ed25519 request-signing key; and the server's allow-list of client keys.",
      formatter_class=_HelpFormatter)
  actions = certs.add_subparsers(dest="certs_command", required=True)
  init = actions.add_parser("init", help="make a new authority, server and clients",
                            formatter_class=_HelpFormatter)
  init.add_argument("folder", help="where to write (ca.pem, server.pem, clients/...)")
  init.add_argument("--client", action="append", dest="clients", metavar="NAME",
                    help="a client to make credentials for (repeat it; default client-1)")
  init.add_argument("--server-name", action="append", dest="server_names", metavar="NAME",
                    help="a DNS name or IP address of the server (repeat it; default "
                    "localhost and 127.0.0.1)")
  init.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
  init.add_argument("--force", action="store_true", help="replace existing files")
  client = actions.add_parser("client", help="add a client signed by an existing authority")
  client.add_argument("folder")
  client.add_argument("name")
  client.add_argument("--days", type=int, default=365)
  client.add_argument("--force", action="store_true", help="replace the client's files")
  allow = actions.add_parser("allow", help="allow a client's signing key on the server")
  allow.add_argument("allow_list", help="the server's allow-list (JSON; made if missing)")
  allow.add_argument("public_key", help="the client's .sign.pub file")
  allow.add_argument("--name", required=True, help="the client's name in the list")
  revoke = actions.add_parser("revoke", help="remove a client key from the allow-list")
  revoke.add_argument("allow_list")
  revoke.add_argument("key", help="a key id (or a prefix of 8+ digits) or a client name")
  listing = actions.add_parser("list", help="print the allowed client keys")
  listing.add_argument("allow_list")


def _add_server_parser(sub) -> None:
  server = sub.add_parser(
      "server", help="serve a learning process's rounds to real clients",
      description="Serve a learning process over gRPC (fedjit.deploy.Server): clients check in "
      "with signed requests, run the process's client program on their own data and submit "
      "their outputs; committed rounds are kept in the store, so a restarted server resumes.",
      formatter_class=_HelpFormatter)
  server.add_argument("--process", required=True, metavar="MODULE:FUNCTION",
                      help="a function with no arguments returning the learning process, "
                      "e.g. my_experiment:build_process")
  server.add_argument("--allow-list", required=True, help="the allowed client keys (JSON)")
  server.add_argument("--store", required=True, help="the server database (SQLite)")
  server.add_argument("--certificate", help="the server's TLS certificate (server.pem)")
  server.add_argument("--key", help="the server's TLS key (server.key)")
  server.add_argument("--client-ca", help="require client certificates signed by this CA")
  server.add_argument("--insecure", action="store_true", help="no TLS (local experiments)")
  server.add_argument("--address", default="127.0.0.1:8443", help="where to listen")
  server.add_argument("--goal", type=int, required=True, help="reports a round wants")
  server.add_argument("--min-reports", type=int, default=None, help="quorum (default --goal)")
  server.add_argument("--over-selection", type=float, default=1.3)
  server.add_argument("--selection-timeout", type=float, default=60.0)
  server.add_argument("--reporting-deadline", type=float, default=300.0)
  server.add_argument("--rounds", type=int, required=True, help="stop after this many rounds")


def server(args) -> None:
  """`fedjit server ...` (see `_add_server_parser`)."""
  import importlib
  import time
  from fedjit import deploy
  module_name, _, function = args.process.partition(":")
  if not module_name or not function:
    raise _UsageError(f"--process must be MODULE:FUNCTION, got {args.process!r}")
  sys.path.insert(0, ".")
  try:
    builder = getattr(importlib.import_module(module_name), function)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"cannot load --process {args.process}: {e}") from None
  config = deploy.RoundConfig(goal_count=args.goal, min_reports=args.min_reports,
                              over_selection=args.over_selection,
                              selection_timeout=args.selection_timeout,
                              reporting_deadline=args.reporting_deadline)
  srv = deploy.Server(builder(), allow_list=args.allow_list, store_path=args.store,
                      config=config, certificate=args.certificate, key=args.key,
                      client_ca=args.client_ca, address=args.address,
                      insecure=args.insecure)
  port = srv.start()
  print(f"serving {srv.program_sha256} on port {port}; {srv.committed_rounds} round(s) "
        f"committed so far", flush=True)
  seen = srv.committed_rounds
  try:
    while srv.committed_rounds < args.rounds:
      time.sleep(0.2)
      if srv.committed_rounds != seen:
        for number, _, summary in srv.store.events("commit"):
          if number > seen:
            loss = summary.get("metrics", {}).get("client_work/train/loss")
            print(f"round {number} committed: {summary['reports']} report(s), "
                  f"{summary['dropped']} dropped" + (f", loss {loss:.4f}" if loss else ""),
                  flush=True)
        seen = srv.committed_rounds
  finally:
    srv.stop()


def _add_client_parser(sub) -> None:
  client = sub.add_parser(
      "client", help="review and approve the programs this client may run",
      description="The data owner's side of fedjit.deploy: review a task's client program "
      "(what it computes and what it sends to the server, with any DP noise) and approve it "
      "into a local policy; the client runtime runs only approved programs.",
      formatter_class=_HelpFormatter)
  actions = client.add_subparsers(dest="client_command", required=True)
  review = actions.add_parser("review", help="print what a task's client program sends")
  review.add_argument("task", nargs="?", help="a task bundle (fedjit.deploy.write_task_bundle); "
                      "or use --server")
  _connection_options(review)
  run = actions.add_parser("run", help="take part in a server's rounds",
                           formatter_class=_HelpFormatter)
  _connection_options(run)
  run.add_argument("--data", required=True, help="the client's data folder (dataset.json and "
                   "data.npz; see fedjit.deploy.save_client_folder)")
  run.add_argument("--policy", required=True, help="the approved programs (fedjit client "
                   "approve)")
  run.add_argument("--rounds", type=int, default=None, help="stop after this many accepted "
                   "reports")
  run.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
  approve = actions.add_parser("approve", help="approve a program hash")
  approve.add_argument("hash")
  approve.add_argument("--policy", required=True, help="the local policy file (JSON)")
  approve.add_argument("--note", default="", help="why (kept in the policy)")
  revoke = actions.add_parser("revoke", help="withdraw an approval")
  revoke.add_argument("hash")
  revoke.add_argument("--policy", required=True)
  listing = actions.add_parser("policy", help="list the approved program hashes")
  listing.add_argument("--policy", required=True)


def _connection_options(p) -> None:
  p.add_argument("--server", help="the server, host:port")
  p.add_argument("--identity", help="the client's signing key (.sign.key)")
  p.add_argument("--ca", help="the CA certificate that signed the server's (ca.pem)")
  p.add_argument("--certificate", help="the client's TLS certificate (mutual TLS)")
  p.add_argument("--key", help="the client's TLS key (mutual TLS)")
  p.add_argument("--insecure", action="store_true", help="no TLS (local experiments only)")


def _connect(args, data=None, policy=None):
  from fedjit import deploy
  if not args.server or not args.identity:
    raise _UsageError("connecting to a server needs --server and --identity")
  return deploy.Client(args.server, args.identity, data, policy or deploy.ApprovalPolicy(),
                       ca_certificate=args.ca, certificate=args.certificate, key=args.key,
                       insecure=args.insecure)


def client(args) -> None:
  """`fedjit client ...` (see `_add_client_parser`)."""
  from fedjit.deploy import _review
  if args.client_command == "review":
    if args.task:
      manifest, _ = _review.read_task_bundle(args.task)
    else:
      connection = _connect(args)
      try:
        manifest = connection.manifest()
      finally:
        connection.close()
    print(manifest.review())
    return
  if args.client_command == "run":
    from fedjit import deploy
    if not args.server or not args.identity:
      raise _UsageError("connecting to a server needs --server and --identity")
    connection = _connect(args, deploy.load_client_folder(args.data),
                          deploy.ApprovalPolicy.load(args.policy))
    try:
      outcomes = connection.run(max_rounds=args.rounds, max_seconds=args.max_seconds)
    finally:
      connection.close()
    print(f"reports: {', '.join(outcomes) if outcomes else 'none'}")
    if outcomes and outcomes[-1] == "not_approved":
      raise ValueError("the server's program is not approved in " + args.policy +
                       "; review it with `fedjit client review` first")
    return
  policy = _review.ApprovalPolicy.load(args.policy)
  if args.client_command == "approve":
    policy.approve(args.hash, args.note)
    policy.save(args.policy)
    print(f"approved {args.hash} in {args.policy}")
  elif args.client_command == "revoke":
    try:
      policy.revoke(args.hash)
    except KeyError as e:
      raise ValueError(e.args[0]) from None
    policy.save(args.policy)
    print(f"revoked {args.hash} from {args.policy}")
  else:
    for h in policy.hashes():
      print(h)
    print(f"{len(policy.hashes())} approved program(s) in {args.policy}")


def certs(args) -> None:
  """`fedjit certs ...` (see `_add_certs_parser`)."""
  from fedjit import deploy
  if args.certs_command == "init":
    files = deploy.make_certificates(
        args.folder, args.clients or ["client-1"],
        server_names=args.server_names or ["localhost", "127.0.0.1"],
        valid_days=args.days, overwrite=args.force)
    print(f"wrote the authority {files.ca_certificate} (keep {files.ca_key} offline), the "
          f"server's {files.server_certificate} and {len(files.clients)} client(s):")
    for c in files.clients:
      print(f"  {c.name}: {c.certificate}, {c.key}, signing key {c.signing_key}")
  elif args.certs_command == "client":
    c = deploy.add_client(args.folder, args.name, valid_days=args.days, overwrite=args.force)
    print(f"wrote {c.certificate}, {c.key} and the signing key {c.signing_key} "
          f"(public: {c.public_key})")
  elif args.certs_command == "allow":
    with open(args.public_key, "rb") as fh:
      text = fh.read(1024)
    allow = deploy.AllowList.load(args.allow_list)
    kid = allow.add(text, args.name)
    allow.save(args.allow_list)
    print(f"allowed {args.name} ({kid}) in {args.allow_list}")
  elif args.certs_command == "revoke":
    allow = deploy.AllowList.load(args.allow_list)
    try:
      kid = allow.revoke(args.key)
    except KeyError as e:
      raise ValueError(e.args[0]) from None
    allow.save(args.allow_list)
    print(f"revoked {kid} from {args.allow_list}")
  else:
    allow = deploy.AllowList.load(args.allow_list)
    for kid, entry in allow.items():
      print(f"{kid}  {entry.name}")
    print(f"{len(allow)} allowed key(s) in {args.allow_list}")


def _user_errors() -> tuple[type, ...]:
  """The errors that bad input (files, options, data) raises: reported in
  one line, without a traceback."""
  from fedjit.core import FederatedOperationError, FederatedTypeError
  from fedjit.simulation import UnknownClientError
  from fedjit.simulation.datasets._download import DownloadError
  return (OSError, DownloadError, ValueError, FederatedTypeError, FederatedOperationError,
          UnknownClientError)


# The library's messages name keyword arguments; a CLI user needs the options.
_CLI_WORDS = (("path='folder/with/the/files'", "--data-dir folder/with/the/files"),
              ("download=True", "--download"),
              ("resume=True", "--resume"),
              ("overwrite=True", "--overwrite"),
              ("pass rounds > ", "pass --rounds > "),
              ("Use the same seed", "Use the same --seed"),
              ("another output_dir", "a new --output"))


def _for_cli(message: str) -> str:
  for library, option in _CLI_WORDS:
    message = message.replace(library, option)
  return message


def main(argv: Sequence[str] | None = None) -> int:
  """Entry point of the `fedjit` console script.

  Returns (or exits with) 0 on success, 1 when the input is bad (a missing
  or corrupt dataset file, data that do not fit), 2 for bad options and 130
  when interrupted.
  """
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.command == "simulate" and args.resume and args.output is None:
    parser.error("--resume needs --output, the folder of the run to continue "
                 "(e.g. --resume --output fedjit_output/digits-fedavg-20250101-120000)")
  try:
    if args.command == "simulate":
      simulate(args)
    elif args.command == "certs":
      certs(args)
    elif args.command == "client":
      client(args)
    elif args.command == "server":
      server(args)
  except _UsageError as e:
    print(f"fedjit: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    return 130
  except Exception as e:  # noqa: BLE001 -- filtered just below
    if not isinstance(e, _user_errors()):
      raise
    print(f"fedjit: error: {_for_cli(str(e))}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
