"""The round loop: sample clients, run a round, evaluate, log, plot, checkpoint."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import json
import os
import pathlib
import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from fedjit.core import FederatedTypeError
from fedjit.simulation._client_data import ClientData
from fedjit.simulation._sampling import sample_clients

__all__ = ["run_training", "TrainingResult", "flatten_metrics", "build_central_evaluation",
           "plot_curves"]

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
PLOT = "curves.png"


@dataclasses.dataclass
class TrainingResult:
  """What `run_training` returns: the final state, every round's metrics
  (rounds before a resume included), the output folder, and the plot's path
  (None when no plot was written, e.g. without matplotlib)."""
  state: Any
  history: list[dict]
  output_dir: pathlib.Path | None
  plot_path: pathlib.Path | None = None


def flatten_metrics(metrics: Any, prefix: str = "") -> dict[str, float]:
  """Nested metrics as `{"client_work/train/loss": 0.5, ...}` of Python numbers.

  Example:
    >>> flatten_metrics({"client_work": {"train": {"loss": np.float32(0.5)}}})
    {'client_work/train/loss': 0.5}
  """
  out: dict[str, float] = {}
  if isinstance(metrics, Mapping):
    items = metrics.items()
  elif hasattr(metrics, "_asdict"):
    items = metrics._asdict().items()
  elif isinstance(metrics, (list, tuple)):
    items = [(str(i), v) for i, v in enumerate(metrics)]
  else:
    value = np.asarray(metrics)
    if value.ndim == 0 and np.issubdtype(value.dtype, np.number):
      out[prefix] = value.item()
    return out
  for k, v in items:
    out.update(flatten_metrics(v, f"{prefix}/{k}" if prefix else str(k)))
  return out


def _short(metrics: dict[str, float]) -> dict[str, str]:
  keep = {}
  for k, v in metrics.items():
    name = k.split("/")[-1]
    if name in ("loss", "accuracy"):
      keep[k.replace("client_work/train/", "train_").replace("eval/", "eval_")] = f"{v:.4f}"
  return keep


def _summary_writer_class():
  """TensorBoard's `SummaryWriter` from tensorboardX, else from PyTorch
  (`torch.utils.tensorboard`, which needs the `tensorboard` package); None
  when neither is installed. TensorFlow's `tf.summary` is not tried: importing
  TensorFlow takes seconds and its API differs."""
  try:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  except ImportError:
    pass
  try:  # look before importing torch: it is slow to import, and useless without tensorboard
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("tensorboard") is None:
      return None
  except (ImportError, ValueError):  # a module in sys.modules without a spec
    pass
  try:
    from torch.utils.tensorboard import SummaryWriter
    return SummaryWriter
  except ImportError:
    return None


class _Logs:
  """The metrics history (kept in memory), its JSON-lines file, and
  TensorBoard when a SummaryWriter is installed."""

  def __init__(self, output_dir: pathlib.Path | None, start_round: int, tensorboard: bool):
    self.path = None if output_dir is None else output_dir / METRICS
    self.writer = None
    self.records: list[dict] = []
    if self.path is not None:
      if start_round > 0 and self.path.exists():  # resumed: drop rounds after the checkpoint
        self.records = [r for r in (json.loads(l) for l in self.path.read_text().splitlines()
                                    if l.strip()) if r["round"] < start_round]
      self.path.write_text("".join(json.dumps(r) + "\n" for r in self.records))
      if tensorboard:
        writer = _summary_writer_class()
        if writer is not None:
          self.writer = writer(str(output_dir / "tensorboard"))

  def write(self, record: dict) -> None:
    self.records.append(record)
    if self.path is not None:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")
    if self.writer is not None:
      for k, v in record.items():
        if k != "round":
          self.writer.add_scalar(k, v, record["round"])

  def history(self) -> list[dict]:
    return list(self.records)

  def close(self):
    if self.writer is not None:
      self.writer.close()


def plot_curves(history: list[dict], path: pathlib.Path) -> pathlib.Path | None:
  """A PNG with the training and evaluation loss and accuracy per round.

  Returns None (and draws nothing) when matplotlib is not installed.
  """
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    return None
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, name in zip(axes, ("loss", "accuracy")):
    for key in sorted({k for h in history for k in h if k.split("/")[-1] == name}):
      points = [(h["round"], h[key]) for h in history if key in h]
      ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
    ax.set_xlabel("round")
    ax.set_title(name)
    if ax.lines:
      ax.legend(fontsize=8)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.part")
  fig.savefig(tmp, format="png", dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path


class _Prefetcher:
  """Client data for each round, prepared for the vectorized backend.

  With `cache_clients`, every client is padded once into a device-resident
  population and each round passes only the cohort's indices (the program
  gathers the rows). Otherwise the next round's cohort is padded in a
  background thread while the current round runs. On the reference
  backend, the cohort's datasets are passed as they are.
  """

  def __init__(self, process, client_data, ids, clients_per_round, seed, cache_clients):
    import fedjit
    self.process, self.client_data, self.ids = process, client_data, ids
    self.k, self.seed = clients_per_round, seed
    self.enabled = isinstance(fedjit.get_backend(), fedjit.VectorizedBackend)
    self.pending: dict[int, concurrent.futures.Future] = {}
    self.pool = None
    self.population = None
    if not self.enabled:
      return
    self.data_type = process.next.type_signature.parameter[1]
    if cache_clients is None:
      cache_clients = len(ids) <= 100_000
    if cache_clients:
      from fedjit.simulation._population import Population
      self.population = Population(
          self.data_type, {c: client_data.create_dataset_for_client(c) for c in ids})
    else:
      self.pool = concurrent.futures.ThreadPoolExecutor(1)

  def _datasets(self, r: int) -> list:
    chosen = sample_clients(self.ids, self.k, r, self.seed)
    return [self.client_data.create_dataset_for_client(c) for c in chosen]

  def _prepare(self, r: int):
    from fedjit.core import _values
    lease = _values.BufferLease()
    with lease:
      return _values.to_vectorized(self.data_type, self._datasets(r), "client data"), lease

  def take(self, r: int, ahead: int | None):
    if not self.enabled:
      return self._datasets(r), None
    if self.population is not None:
      chosen = sample_clients(self.ids, self.k, r, self.seed)
      return self.population.cohort(chosen), None
    future = self.pending.pop(r, None)
    data, lease = future.result() if future is not None else self._prepare(r)
    if ahead is not None:
      self.pending[ahead] = self.pool.submit(self._prepare, ahead)
    return data, lease

  def close(self):
    if self.pool is not None:
      self.pool.shutdown(wait=True, cancel_futures=True)


def _name_the_client(error: Exception, process: Any, client_data: ClientData,
                     client_ids: list[str]) -> None:
  """Re-raises a client-data type error naming the client by its id.

  The core names a bad client by its position in the list it was given
  ("client 3"); here each client's dataset is checked on its own against the
  process's client-data type, and the first that fails is reported with its
  id. Returns (so the caller re-raises `error`) when none fails alone.
  """
  from fedjit.core import FederatedType, _values
  try:
    data_type = process.next.type_signature.parameter[1]
  except (AttributeError, IndexError, TypeError):
    return
  if not isinstance(data_type, FederatedType):
    return
  for cid in client_ids:
    try:
      _values.normalize(data_type.member, client_data.create_dataset_for_client(cid), np,
                        f"client {cid!r}")
    except FederatedTypeError as e:
      raise e from error


def run_training(process: Any, client_data: ClientData, rounds: int, clients_per_round: int,
                 evaluation: Callable[[Any], Mapping[str, Any]] | None = None,
                 seed: int = 0, output_dir: str | os.PathLike | None = None,
                 checkpoint_every: int = 0, resume: bool = False, eval_every: int = 1,
                 min_examples: int = 1, progress: bool = True, tensorboard: bool = True,
                 plot: bool = True, print_fn: Callable[[str], None] | None = None,
                 cache_clients: bool | None = None) -> TrainingResult:
  """Trains a learning process on sampled clients, round after round.

  Each round draws `clients_per_round` clients uniformly without replacement
  (deterministic for `seed` and the round number), runs `process.next` on
  their datasets, and every `eval_every` rounds calls `evaluation(model
  weights)`. Metrics are returned as `history` (one dict per round) and go to
  `output_dir/metrics.jsonl` (one JSON object per round), to TensorBoard
  when tensorboardX (or PyTorch's) is installed, and to a plot,
  `output_dir/curves.png`, when matplotlib is. With `checkpoint_every=k` the state is saved
  every k rounds; `resume=True` continues from the checkpoint in
  `output_dir` and ends with the same weights as an uninterrupted run.

  Args:
    process: a `LearningProcess` (from `fedjit.learning.algorithms`).
    client_data: the training clients, already preprocessed (batched).
    rounds: the total number of rounds (including rounds already done when
      resuming).
    clients_per_round: clients sampled each round.
    evaluation: `fn(model_weights) -> {name: value}`, e.g. from
      `build_central_evaluation`.
    seed: the sampling seed.
    output_dir: where metrics, plot and checkpoints go (None: nowhere).
    checkpoint_every: save a checkpoint every this many rounds (0: never;
      the final state is always saved when `output_dir` is given).
    resume: continue from `output_dir`'s checkpoint if there is one (and
      warn, starting from round 0, if there is none).
    eval_every: evaluate every this many rounds (and after the last).
    min_examples: clients with fewer examples are never sampled.
    progress: show a progress bar.
    tensorboard: also log to TensorBoard (`output_dir/tensorboard`) when
      `tensorboardX`, or PyTorch with `tensorboard`, is installed.
    plot: write the PNG plot at the end.
    print_fn: called with one line per round (e.g. `print`), or None.
    cache_clients: on the vectorized backend, pad every client once and keep
      them on the device, so a round moves only the cohort's indices (None:
      when there are at most 100,000 clients); otherwise the next round's
      cohort is prepared in a background thread.

  Returns:
    `TrainingResult(state, history, output_dir, plot_path)`.

  Raises:
    ValueError: bad `rounds` or `clients_per_round`, or a checkpoint written
      with another seed.
    FederatedTypeError: a client's data do not match the process's
      client-data type (the message names the client id).

  Example:
    >>> result = fedjit.simulation.run_training(
    ...     trainer, train.preprocess(lambda ds: ds.batch(20)), rounds=50,
    ...     clients_per_round=10, evaluation=build_central_evaluation(model, test_batches),
    ...     output_dir="runs/fedavg", checkpoint_every=10)
  """
  from fedjit.learning import load_checkpoint, read_checkpoint_metadata, save_checkpoint

  if rounds < 1:
    raise ValueError(f"rounds must be >= 1, got {rounds}.")
  out = None if output_dir is None else pathlib.Path(output_dir)
  if out is not None:
    out.mkdir(parents=True, exist_ok=True)
  ids = client_data.client_ids
  if min_examples > 1:
    ids = [c for c in ids if client_data.create_dataset_for_client(c).num_examples >= min_examples]
  elif min_examples == 1:
    ids = [c for c in ids if len(client_data.create_dataset_for_client(c)) > 0]
  if not ids:
    raise ValueError(f"No client has at least {min_examples} example(s).")
  if clients_per_round > len(ids):
    raise ValueError(f"clients_per_round={clients_per_round} but only {len(ids)} clients "
                     f"have at least {min_examples} example(s).")

  state = process.initialize()
  start = 0
  if resume:
    if out is None:
      raise ValueError("resume=True needs output_dir, where the checkpoint is.")
    ckpt = out / CHECKPOINT
    if ckpt.exists():
      meta = read_checkpoint_metadata(ckpt)
      if meta.get("seed") != seed:
        raise ValueError(f"The checkpoint {ckpt} was written with seed {meta.get('seed')}, "
                         f"but this run uses seed {seed}; resuming would sample different "
                         f"clients. Use the same seed, or another output_dir.")
      state = load_checkpoint(ckpt, state)
      start = int(meta["round"]) + 1
    else:
      warnings.warn(f"resume=True, but there is no checkpoint {ckpt}: starting from round 0.",
                    stacklevel=2)
  logs = _Logs(out, start, tensorboard)

  bar = None
  if progress and start < rounds:
    try:
      from tqdm.auto import tqdm
      bar = tqdm(total=rounds, initial=start, unit="round", desc="fedjit")
    except ImportError:
      bar = None
  prepare = None
  try:
    try:
      prepare = _Prefetcher(process, client_data, ids, clients_per_round, seed, cache_clients)
    except FederatedTypeError as e:
      _name_the_client(e, process, client_data, ids)
      raise
    for r in range(start, rounds):
      t0 = time.perf_counter()
      try:
        data, lease = prepare.take(r, ahead=r + 1 if r + 1 < rounds else None)
        result = process.next(state, data)
      except FederatedTypeError as e:
        cohort = sample_clients(ids, clients_per_round, r, seed)
        _name_the_client(e, process, client_data, cohort)
        raise
      if lease is not None:
        lease.release()
      state = result.state
      record = {"round": r}
      record.update(flatten_metrics(result.metrics))
      if evaluation is not None and ((r + 1) % eval_every == 0 or r == rounds - 1):
        weights = process.get_model_weights(state)
        record.update({f"eval/{k}": v for k, v in flatten_metrics(dict(evaluation(weights))).items()})
      record["seconds"] = time.perf_counter() - t0
      logs.write(record)
      if out is not None and ((checkpoint_every and (r + 1) % checkpoint_every == 0)
                              or r == rounds - 1):
        save_checkpoint(out / CHECKPOINT, state, metadata={"round": r, "seed": seed})
      short = _short(record)
      if bar is not None:
        bar.set_postfix(short, refresh=False)
        bar.update(1)
      if print_fn is not None:
        print_fn(f"round {r + 1:4d}/{rounds}: " + ", ".join(f"{k} {v}" for k, v in short.items())
                 + f" ({record['seconds']:.2f}s)")
  finally:
    if prepare is not None:
      prepare.close()
    if bar is not None:
      bar.close()
    logs.close()
  history = logs.history()
  plot_path = None
  if out is not None and plot and history:
    plot_path = plot_curves(history, out / PLOT)
  return TrainingResult(state, history, out, plot_path)


def build_central_evaluation(model: Any, dataset: Any) -> Callable[[Any], dict]:
  """An evaluation function for `run_training`: the model's metrics on one
  centralized dataset (a list of batches or a batched `Dataset`).

  Example:
    >>> evaluation = build_central_evaluation(model, test.create_dataset_from_all_clients().batch(100))
  """
  from fedjit.learning import evaluate
  batches = list(dataset.as_elements()) if hasattr(dataset, "as_elements") else list(dataset)

  def evaluation(weights):
    return evaluate(model, weights, batches)
  return evaluation
