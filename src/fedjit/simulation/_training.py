"""The round loop: sample clients, run a round, evaluate, log, plot, checkpoint."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import pathlib
import shutil
import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from fedjit._tracebacks import user_stacklevel
from fedjit.core import FederatedTypeError
from fedjit.learning.templates import InvalidLabelsWarning
from fedjit.learning.templates._learning_process import plain_number
from fedjit.simulation._client_data import ClientData
from fedjit.simulation._sampling import sample_clients

__all__ = ["run_training", "TrainingResult", "TrainingWarning", "RunExistsError",
           "flatten_metrics", "build_central_evaluation", "plot_curves"]

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.jsonl"
PLOT = "curves.png"
TENSORBOARD = "tensorboard"

# The training loss is "exploding" when it is finite and above _EXPLODE_ABSOLUTE,
# or above _EXPLODE_FACTOR times the smallest loss of an earlier round (one under
# _EXPLODE_FLOOR counts as _EXPLODE_FLOOR, so that a lucky round with a loss of
# 0 does not make every later loss look exploding). The smallest, not the first:
# with a learning rate high enough, the first round's loss is already huge.
_EXPLODE_FACTOR = 1e3
_EXPLODE_FLOOR = 1e-2
_EXPLODE_ABSOLUTE = 1e6


class TrainingWarning(UserWarning):
  """A training run that goes wrong without failing: updates discarded as
  not finite, a NaN or exploding loss, examples skipped for their labels,
  or a checkpoint resumed with other options than it was written with.

  `run_training` gives each kind once per run, naming the round and what to
  check. Turn them into errors to stop such a run at once.

  Example:
    >>> warnings.simplefilter("error", fedjit.simulation.TrainingWarning)
  """


class RunExistsError(FileExistsError):
  """`output_dir` already holds a run, and neither `resume` nor `overwrite`
  says what to do with it.

  Example:
    >>> try:
    ...   run_training(process, data, 10, 5, output_dir="runs/a")
    ... except RunExistsError:
    ...   run_training(process, data, 10, 5, output_dir="runs/a", resume=True)
  """


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

  Booleans become 0 or 1; a float32 value becomes the Python float that
  prints as the float32 does (`0.1`, not `0.10000000149011612`); values that
  are not numeric scalars are left out.

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
    value = plain_number(np.asarray(metrics))
    if isinstance(value, bool):
      out[prefix] = int(value)
    elif isinstance(value, (int, float)):
      out[prefix] = value
    return out
  for k, v in items:
    out.update(flatten_metrics(v, f"{prefix}/{k}" if prefix else str(k)))
  return out


def _number(value: float) -> str:
  """A metric for the console: 4 significant digits, `3e+21` rather than 22
  digits of fixed point."""
  return f"{value:.4g}"


def _short(metrics: dict[str, float]) -> dict[str, str]:
  keep = {}
  for k, v in metrics.items():
    name = k.split("/")[-1]
    if name in ("loss", "accuracy"):
      keep[k.replace("client_work/train/", "train_").replace("eval/", "eval_")] = _number(v)
  return keep


def _last(key: str) -> str:
  return key.rsplit("/", 1)[-1]


def _train_loss(flat: Mapping[str, float]) -> tuple[str, float] | None:
  """The training loss among flattened process metrics (a key ending in
  `/loss`, one under a `train` part preferred; `eval/` keys never)."""
  keys = [k for k in flat if _last(k) == "loss" and not k.startswith("eval/")]
  keys.sort(key=lambda k: "train" not in k.split("/"))
  return (keys[0], flat[keys[0]]) if keys else None


def _largest(flat: Mapping[str, float], name: str) -> tuple[str, float] | None:
  """The metric called `name` (the last part of its key) with the largest
  value, wherever it is in the structure; None when there is none."""
  found = [(k, v) for k, v in flat.items() if _last(k) == name]
  return max(found, key=lambda kv: kv[1]) if found else None


class _Watch:
  """Warns, once per run and kind, of training that goes wrong quietly.

  Kinds: clients were left out for updates that are not finite (the client
  work's `num_non_finite_clients`); the aggregated update was discarded as not
  finite (a finalizer's `update_non_finite`); the training loss is NaN or
  infinite; the loss is exploding (see `_EXPLODE_*`); examples were skipped
  for labels out of range (`num_invalid_labels`, in training or in
  evaluation); the evaluation loss is not finite while the training loss is.
  """

  def __init__(self, history: list[dict]):
    self.shown: set[str] = set()
    self.best: tuple[int, float] | None = None  # (round, loss) of the smallest finite loss
    for h in history:
      self._note(h["round"], _train_loss(h))

  def _note(self, n: int, loss: tuple[str, float] | None) -> None:
    if (loss is not None and math.isfinite(loss[1])
        and (self.best is None or loss[1] < self.best[1])):
      self.best = (n, loss[1])

  def _warn(self, kind: str, message: str) -> None:
    if kind not in self.shown:
      self.shown.add(kind)
      warnings.warn(message, TrainingWarning, stacklevel=user_stacklevel())

  def check(self, n: int, metrics: Mapping[str, float], evals: Mapping[str, float]) -> None:
    """Looks at round `n`'s flattened process and evaluation metrics."""
    shown_once = "This warning is shown once per run."
    discarded = _largest(metrics, "update_non_finite")
    if discarded is not None and discarded[1] > 0:
      self._warn("update", (
          f"Round {n}: the clients' aggregated model update is not finite (NaN or inf), so "
          f"it was discarded and the model did not change (metric {discarded[0]!r}); "
          f"rounds like this do not train. Check the client data for NaN or inf values "
          f"(e.g. np.isfinite(x).all() for each client) and whether the learning rate is so "
          f"high that training diverges. {shown_once}"))
    dropped = _largest(metrics, "num_non_finite_clients")
    if dropped is not None and dropped[1] > 0:
      self._warn("dropped", (
          f"Round {n}: {int(dropped[1])} client(s) had a model update that is not finite "
          f"(NaN or inf), so they were left out of the round (weight 0; metric "
          f"{dropped[0]!r}); the others trained the model. Check those clients' data for "
          f"NaN or inf values (e.g. np.isfinite(x).all() for each client) and whether the "
          f"learning rate is so high that training diverges. {shown_once}"))
    loss = _train_loss(metrics)
    if loss is not None:
      key, value = loss
      if not math.isfinite(value):
        self._warn("loss", (
            f"Round {n}: the training loss is {value} (metric {key!r}). Check the client data "
            f"for NaN or inf values, that the learning rate is not so high that training "
            f"diverges, and that labels are in range (0 <= label < number of classes). "
            f"{shown_once}"))
      else:
        if value > _EXPLODE_ABSOLUTE:
          why = f"over {_number(_EXPLODE_ABSOLUTE)}"
        elif self.best is not None and value > _EXPLODE_FACTOR * max(self.best[1],
                                                                     _EXPLODE_FLOOR):
          floor = (f", counted as {_number(_EXPLODE_FLOOR)}" if self.best[1] < _EXPLODE_FLOOR
                   else "")
          why = (f"over {_number(_EXPLODE_FACTOR)} times the smallest loss so far (round "
                 f"{self.best[0]}'s {_number(self.best[1])}{floor})")
        else:
          why = None
        if why is not None:
          self._warn("exploding", (
              f"Round {n}: the training loss is {_number(value)}, {why}: training looks like "
              f"it is diverging. Lower the learning rate (the client's, or the server's), and "
              f"check the data for very large values and the labels for range. (A loss "
              f"this large can be right, e.g. a squared error on large targets; then "
              f"filter this warning out.) {shown_once}"))
        self._note(n, loss)
    for kind, flat, what in (("labels", metrics, "training"), ("eval_labels", evals, "evaluation")):
      invalid = _largest(flat, "num_invalid_labels")
      if invalid is not None and invalid[1] > 0:
        self._warn(kind, (
            f"Round {n}: {int(invalid[1])} {what} examples were left out because their label "
            f"is not a class of the model (metric {invalid[0]!r}). Labels must be integers "
            f"with 0 <= label < number of classes: check the dataset's labels (1-based? -1 "
            f"for unknown?) and the size of the model's output. Left-out examples are not "
            f"in the loss, the metrics or num_examples. {shown_once}"))
    eval_loss = evals.get("eval/loss")
    if (eval_loss is not None and not math.isfinite(eval_loss)
        and (loss is None or math.isfinite(loss[1]))):
      self._warn("eval_loss", (
          f"Round {n}: the evaluation loss is {eval_loss} while the training loss is finite. "
          f"Check the evaluation data for NaN or inf values. {shown_once}"))


@contextlib.contextmanager
def _one_label_warning():
  """Silences the per-round label warning of `LearningProcessOutput` (and of
  evaluation), which `_Watch` replaces with one for the run."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=InvalidLabelsWarning)
    yield


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


def _to_json(record: dict) -> str:
  """One line of strict JSON: NaN and infinities (not JSON numbers) are null,
  so that any JSON reader (jq, JavaScript, pandas) takes the file."""
  return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v
                     for k, v in record.items()}, allow_nan=False)


def _from_json(line: str) -> dict:
  """A record written by `_to_json` (null read back as NaN; an earlier fedjit
  wrote NaN itself, which Python's json reads too)."""
  return {k: math.nan if v is None else v for k, v in json.loads(line).items()}


class _Logs:
  """The metrics history (kept in memory), its JSON-lines file, and
  TensorBoard when a SummaryWriter is installed.

  Rounds are numbered from 1. `rounds_done` rounds are kept from an existing
  file (when resuming); a file from before rounds were 1-based (its first
  record is round 0) is renumbered.
  """

  def __init__(self, output_dir: pathlib.Path | None, rounds_done: int, tensorboard: bool):
    self.path = None if output_dir is None else output_dir / METRICS
    self.writer = None
    self.records: list[dict] = []
    if self.path is not None:
      if rounds_done > 0 and self.path.exists():  # resumed: drop rounds after the checkpoint
        records = [_from_json(l) for l in self.path.read_text().splitlines() if l.strip()]
        if records and records[0]["round"] == 0:  # written 0-based, by an earlier fedjit
          records = [{**r, "round": r["round"] + 1} for r in records]
        self.records = [r for r in records if r["round"] <= rounds_done]
      self.path.write_text("".join(_to_json(r) + "\n" for r in self.records))
      if tensorboard:
        writer = _summary_writer_class()
        if writer is not None:
          self.writer = writer(str(output_dir / TENSORBOARD))

  def write(self, record: dict) -> None:
    self.records.append(record)
    if self.path is not None:
      with open(self.path, "a") as f:
        f.write(_to_json(record) + "\n")
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

  The x axis is each record's `round` (1 is the first round, as in
  `metrics.jsonl` and on the console); the y axes are labelled `loss` and
  `accuracy`.

  Returns None (and draws nothing) when matplotlib is not installed.

  Example:
    >>> plot_curves([{"round": 1, "eval/loss": 2.3}, {"round": 2, "eval/loss": 1.9}],
    ...             pathlib.Path("runs/a/curves.png"))
    PosixPath('runs/a/curves.png')
  """
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
  except ImportError:
    return None
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, name in zip(axes, ("loss", "accuracy")):
    for key in sorted({k for h in history for k in h if k.split("/")[-1] == name}):
      points = [(h["round"], h[key]) for h in history if key in h]
      ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
    ax.set_xlabel("round")
    ax.set_ylabel(name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no round 1.5
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
    # Cohorts are prepared (padded) ahead in another thread by the backend
    # that will run them, with its layouts (`Backend.prepare`).
    self.backend = fedjit.get_backend()
    self.enabled = isinstance(self.backend, fedjit.VectorizedBackend)
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

  def _chosen(self, r: int) -> list:
    return sample_clients(self.ids, self.k, r, self.seed)

  def _prepare(self, r: int):
    chosen = self._chosen(r)
    datasets = [self.client_data.create_dataset_for_client(c) for c in chosen]
    return self.backend.prepare(self.data_type, datasets, "client data", client_ids=chosen)

  def take(self, r: int, ahead: int | None):
    """Round r's client data, as a `fedjit.core.Prepared` (release it after
    the round); prepares round `ahead`'s in the background."""
    from fedjit.core import Prepared
    if not self.enabled:
      return Prepared([self.client_data.create_dataset_for_client(c) for c in self._chosen(r)])
    if self.population is not None:
      return Prepared(self.population.cohort(self._chosen(r)))
    future = self.pending.pop(r, None)
    prepared = future.result() if future is not None else self._prepare(r)
    if ahead is not None:
      self.pending[ahead] = self.pool.submit(self._prepare, ahead)
    return prepared

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
  from fedjit.core import FederatedType, check_value
  try:
    data_type = process.next.type_signature.parameter[1]
  except (AttributeError, IndexError, TypeError):
    return
  if not isinstance(data_type, FederatedType):
    return
  for cid in client_ids:
    try:
      check_value(data_type.member, client_data.create_dataset_for_client(cid),
                  f"client {cid!r}")
    except FederatedTypeError as e:
      raise e from error


def _run_files(output_dir: pathlib.Path) -> list[str]:
  """The files of an earlier run in `output_dir`: its checkpoint, and its
  metrics file when it holds a round. An empty or new folder has none."""
  found = []
  if (output_dir / CHECKPOINT).is_file():
    found.append(CHECKPOINT)
  try:
    if (output_dir / METRICS).stat().st_size > 0:
      found.append(METRICS)
  except OSError:
    pass
  return found


def _clear_run(output_dir: pathlib.Path) -> None:
  """Removes what a run writes into `output_dir` (and nothing else)."""
  for name in (CHECKPOINT, METRICS, PLOT):
    with contextlib.suppress(FileNotFoundError):
      (output_dir / name).unlink()
  if (output_dir / TENSORBOARD).is_dir():
    shutil.rmtree(output_dir / TENSORBOARD)


def _rounds_done(path: pathlib.Path, metadata: Mapping[str, Any]) -> int:
  """The rounds a checkpoint's state has trained. Its `round` is the last
  round done, 1-based; checkpoints written before rounds were 1-based (no
  `first_round: 1`) hold the 0-based index."""
  try:
    last = int(metadata["round"])
  except (KeyError, TypeError, ValueError):
    raise ValueError(f"{path} has no round number in its metadata ({dict(metadata)!r}): it "
                     f"was not written by run_training. Use another output_dir.") from None
  return last if metadata.get("first_round") == 1 else last + 1


def _checkpoint_rounds(output_dir: str | os.PathLike) -> int | None:
  """The rounds done by the checkpoint in `output_dir`; None if there is none."""
  from fedjit.learning import read_checkpoint_metadata
  path = pathlib.Path(output_dir) / CHECKPOINT
  if not path.exists():
    return None
  return _rounds_done(path, read_checkpoint_metadata(path))


def _weights_summary(process: Any, state: Any) -> str | None:
  """The model's trainable arrays, e.g. `"2 arrays: 64x10, 10"`; None when
  the process has no model weights to read."""
  import jax
  try:
    weights = process.get_model_weights(state)
  except Exception:  # noqa: BLE001 -- not a LearningProcess: no model to describe
    return None
  leaves = jax.tree_util.tree_leaves(getattr(weights, "trainable", weights))
  shapes = ["x".join(map(str, np.shape(l))) or "scalar" for l in leaves]
  if len(shapes) > 8:
    shapes = shapes[:8] + [f"... ({len(shapes) - 8} more)"]
  return f"{len(leaves)} array{'s' if len(leaves) != 1 else ''}: {', '.join(shapes)}"


_RUN_ORDER = ("seed", "clients_per_round", "model", "weights")


def _describe_run(run: Mapping[str, Any] | None) -> str:
  """A run's description, e.g. `"fedavg on digits (seed 0; 10 clients per
  round; model softmax, 2 arrays: 10, 64x10)"`: its algorithm, dataset, seed,
  clients per round and model (other options only show in `_differences`)."""
  if not run:
    return "a run that did not record its options"
  text = str(run.get("algorithm") or "a learning process")
  if run.get("dataset"):
    text += f" on {run['dataset']}"
  details = []
  if "seed" in run:
    details.append(f"seed {run['seed']}")
  if "clients_per_round" in run:
    details.append(f"{run['clients_per_round']} clients per round")
  model = ", ".join(str(run[k]) for k in ("model", "weights") if run.get(k))
  if model:
    details.append(f"model {model}")
  return text + (f" ({'; '.join(details)})" if details else "")


def _differences(then: Mapping[str, Any] | None, now: Mapping[str, Any]) -> list[str]:
  """`"dataset mnist -> fashion_mnist"` for each option both runs recorded
  with different values (the model's shapes, which a mismatch names, left out)."""
  if not then:
    return []
  return [f"{k} {then[k]} -> {v}" for k, v in now.items()
          if k in then and k != "weights" and then[k] != v]


def run_training(process: Any, client_data: ClientData, rounds: int, clients_per_round: int,
                 evaluation: Callable[[Any], Mapping[str, Any]] | None = None,
                 seed: int = 0, output_dir: str | os.PathLike | None = None,
                 checkpoint_every: int = 0, resume: bool = False, eval_every: int = 1,
                 min_examples: int = 1, progress: bool = True, tensorboard: bool = True,
                 plot: bool = True, print_fn: Callable[[str], None] | None = None,
                 cache_clients: bool | None = None, overwrite: bool = False,
                 run_info: Mapping[str, Any] | None = None) -> TrainingResult:
  """Trains a learning process on sampled clients, round after round.

  Each round draws `clients_per_round` clients uniformly without replacement
  (deterministic for `seed` and the round number), runs `process.next` on
  their datasets, and every `eval_every` rounds calls `evaluation(model
  weights)`. Metrics are returned as `history` (one dict per round) and go to
  `output_dir/metrics.jsonl` (one strict-JSON object per round: NaN and
  infinities are written as null), to TensorBoard
  when tensorboardX (or PyTorch's) is installed, and to a plot,
  `output_dir/curves.png`, when matplotlib is. With `checkpoint_every=k` the state is saved
  every k rounds; `resume=True` continues from the checkpoint in
  `output_dir` and ends with the same weights as an uninterrupted run.

  Rounds are numbered from 1 everywhere: the `round` of `history`, of
  `metrics.jsonl`, of TensorBoard steps, the plot's x axis and the console
  (round n samples its clients with `sample_clients(..., round_num=n - 1)`).
  A folder that already holds a run (a checkpoint, or metrics of at least
  one round) is neither continued nor replaced unless `resume` or
  `overwrite` says so.

  A run that goes wrong without failing gives a `TrainingWarning`, once per
  kind: clients whose update is not finite were left out of a round
  (`num_non_finite_clients`); the aggregated update is not finite, so the
  round is discarded (`update_non_finite`); the training loss is NaN or
  infinite; the loss is exploding, i.e. finite but above 1e6, or above 1000
  times the smallest loss of an earlier round (taken as at least 0.01);
  examples were skipped because their label is out of range
  (`num_invalid_labels`, in training or evaluation); the evaluation loss is
  not finite while the training loss is. Metrics are found by these names
  anywhere in the metrics structure. Resuming with other options than the
  checkpoint recorded (`run_info`, clients per round) warns too.

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
      warn, starting from round 1, if there is none). The checkpoint must
      have been written with the same `seed` and a state of the same shape,
      and with at most `rounds` rounds.
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
    overwrite: replace a run already in `output_dir`: its checkpoint,
      metrics, plot and `tensorboard` folder are deleted (once the arguments
      are checked, before the first round); other files are left alone.
    run_info: what this run is, for the checkpoint's metadata and for
      messages when a resumed checkpoint does not fit, e.g.
      `{"algorithm": "fedavg", "dataset": "digits", "model": "mlp"}`
      (JSON-serializable). The seed, `clients_per_round` and a summary of the
      model's weights are added.

  Returns:
    `TrainingResult(state, history, output_dir, plot_path)`.

  Raises:
    ValueError: bad `rounds` or `clients_per_round`; both `resume` and
      `overwrite`; or, resuming, a checkpoint written with another seed or
      with more than `rounds` rounds.
    CheckpointMismatchError: (a `ValueError`) resuming from a checkpoint
      whose state does not fit this process; the message says what wrote it
      and what this run is.
    RunExistsError: (a `FileExistsError`) `output_dir` holds a run, and
      neither `resume` nor `overwrite` is set.
    FederatedTypeError: a client's data do not match the process's
      client-data type (the message names the client id).

  Example:
    >>> result = fedjit.simulation.run_training(
    ...     trainer, train.preprocess(lambda ds: ds.batch(20)), rounds=50,
    ...     clients_per_round=10, evaluation=build_central_evaluation(model, test_batches),
    ...     output_dir="runs/fedavg", checkpoint_every=10)
  """
  from fedjit.learning import load_checkpoint, read_checkpoint_metadata, save_checkpoint
  from fedjit.learning._checkpoint import CheckpointMismatchError

  if rounds < 1:
    raise ValueError(f"rounds must be >= 1, got {rounds}.")
  if resume and overwrite:
    raise ValueError("resume=True continues the run in output_dir and overwrite=True "
                     "replaces it: pass one of them, not both.")
  out = None if output_dir is None else pathlib.Path(output_dir)
  if out is not None:
    found = _run_files(out)
    if found and not resume and not overwrite:
      raise RunExistsError(f"{out} already holds a run ({', '.join(found)}); pass resume=True "
                           f"to continue it or overwrite=True to replace it, or use another "
                           f"output_dir.")
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

  run = {**(run_info or {}), "seed": seed, "clients_per_round": clients_per_round}
  try:
    json.dumps(run)
  except (TypeError, ValueError) as e:
    raise TypeError(f"run_info must be JSON-serializable (it goes into the checkpoint's "
                    f"metadata): {e}; got {run_info!r}.") from None
  state = process.initialize()
  weights = _weights_summary(process, state)
  if weights is not None:
    run["weights"] = weights
  start = 0
  if resume:
    if out is None:
      raise ValueError("resume=True needs output_dir, where the checkpoint is.")
    ckpt = out / CHECKPOINT
    if ckpt.exists():
      meta = read_checkpoint_metadata(ckpt)
      then = meta.get("run")
      if meta.get("seed") != seed:
        writer = (_describe_run(then) if then else
                  f"a run with seed {meta.get('seed')}")
        raise ValueError(f"{ckpt} was written by {writer}, but this run uses seed {seed}; "
                         f"resuming would sample different clients. Use the same seed "
                         f"({meta.get('seed')}), or another output_dir.")
      start = _rounds_done(ckpt, meta)
      if rounds < start:
        raise ValueError(f"{ckpt} already has {start} rounds; pass rounds > {start} to train "
                         f"more (rounds counts every round, those already done included).")
      try:
        state = load_checkpoint(ckpt, state)
      except CheckpointMismatchError as e:
        changed = _differences(then, run)
        raise CheckpointMismatchError(
            f"{ckpt} was written by {_describe_run(then)}; this run is {_describe_run(run)}"
            f"{' (' + ', '.join(changed) + ')' if changed else ''}, and its state does not "
            f"fit. Use the same options as that run, or another output_dir.\n(first "
            f"difference: this run's state has {e.template_leaf or 'no more arrays'} where "
            f"the checkpoint has {e.file_leaf or 'no more arrays'}; {e.template_leaves} "
            f"arrays against {e.file_leaves})", path=e.path, where=e.where,
            template_leaf=e.template_leaf, file_leaf=e.file_leaf,
            template_leaves=e.template_leaves, file_leaves=e.file_leaves) from None
      changed = _differences(then, run)
      if changed:
        warnings.warn(f"Resuming {ckpt}, written by {_describe_run(then)}, with other options: "
                      f"{', '.join(changed)}. The resumed run is not the run that was "
                      f"interrupted; to start a new one, use another output_dir.",
                      TrainingWarning, stacklevel=2)
      if print_fn is not None:
        todo = f"round {rounds}" if start + 1 == rounds else f"rounds {start + 1}-{rounds}"
        print_fn(f"resuming from round {start} of {out}: training {todo}" if start < rounds else
                 f"{out} already has {start} rounds: nothing to train (pass rounds > "
                 f"{start} to train more)")
    else:
      warnings.warn(f"resume=True, but there is no checkpoint {ckpt}: starting from round 1.",
                    stacklevel=2)
  elif overwrite and out is not None:
    _clear_run(out)
  logs = _Logs(out, start, tensorboard)
  watch = _Watch(logs.history())

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
    # One filter for the whole loop: setting filters every round would reset
    # Python's record of warnings already shown, and repeat them every round.
    with _one_label_warning():
      for r in range(start, rounds):  # r is 0-based (for sampling); n = r + 1 is the round
        n = r + 1
        t0 = time.perf_counter()
        try:
          data = prepare.take(r, ahead=r + 1 if r + 1 < rounds else None)
          with data:
            result = process.next(state, data.value)
        except FederatedTypeError as e:
          cohort = sample_clients(ids, clients_per_round, r, seed)
          _name_the_client(e, process, client_data, cohort)
          raise
        state = result.state
        metrics = flatten_metrics(result.metrics)
        evals = {}
        if evaluation is not None and (n % eval_every == 0 or n == rounds):
          evaluated = evaluation(process.get_model_weights(state))
          evals = {f"eval/{k}": v for k, v in flatten_metrics(dict(evaluated)).items()}
        record = {"round": n, **metrics, **evals, "seconds": time.perf_counter() - t0}
        logs.write(record)
        if out is not None and ((checkpoint_every and n % checkpoint_every == 0) or n == rounds):
          save_checkpoint(out / CHECKPOINT, state,
                          metadata={"round": n, "first_round": 1, "seed": seed, "run": run})
        short = _short(record)
        if bar is not None:
          bar.set_postfix(short, refresh=False)
          bar.update(1)
        if print_fn is not None:
          print_fn(f"round {n:4d}/{rounds}: " + ", ".join(f"{k} {v}" for k, v in short.items())
                   + f" ({record['seconds']:.2f}s)")
        watch.check(n, metrics, evals)  # after the round's line, which it is about
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
