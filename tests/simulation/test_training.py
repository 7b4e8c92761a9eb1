"""The round loop: sampling, logs, plot, checkpoints and resume."""

import json
import math
import sys
import warnings

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fedjit import learning, simulation
from fedjit.simulation import ClientData


def _setup(num_clients=8):
  rng = np.random.default_rng(0)
  true_w = rng.normal(size=(3, 2))
  arrays = {}
  for i in range(num_clients):
    n = 3 + 2 * i
    x = rng.normal(size=(n, 3)).astype(np.float32)
    arrays[f"c{i}"] = (x, np.argmax(x @ true_w, -1).astype(np.int32))
  data = ClientData.from_arrays(arrays).preprocess(lambda ds: ds.batch(4))
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 3]), (np.int32, [None])),
      metrics=[learning.metrics.MeanMetric(
          "accuracy", lambda y, p: (jnp.argmax(p, -1) == y).astype(jnp.float32))])
  trainer = learning.algorithms.build_weighted_fed_avg(
      model, learning.optimizers.build_sgdm(0.2, momentum=0.5),
      server_optimizer_fn=learning.optimizers.build_adam(0.05))
  test = [b for ds in data.datasets() for b in ds]
  return data, model, trainer, simulation.build_central_evaluation(model, test)


def test_sampling_is_uniform_without_replacement_and_deterministic():
  ids = [f"c{i}" for i in range(20)]
  a = simulation.sample_clients(ids, 5, round_num=3, seed=7)
  assert len(set(a)) == 5 and a == simulation.sample_clients(ids, 5, round_num=3, seed=7)
  assert a != simulation.sample_clients(ids, 5, round_num=4, seed=7)
  counts = {c: 0 for c in ids}
  for r in range(2000):
    for c in simulation.sample_clients(ids, 5, r, seed=0):
      counts[c] += 1
  # Each client is picked with probability 1/4: 500 expected, sd ~19.
  assert all(420 < v < 580 for v in counts.values()), counts
  with pytest.raises(ValueError, match="distinct clients"):
    simulation.sample_clients(ids, 21, 0)
  sampler = simulation.build_uniform_sampling_fn(ids, random_seed=7)
  assert sampler(3, 5) == a


def test_run_training_writes_metrics_plot_and_checkpoint(tmp_path):
  data, model, trainer, evaluation = _setup()
  lines = []
  result = simulation.run_training(trainer, data, rounds=6, clients_per_round=3,
                                   evaluation=evaluation, eval_every=2, seed=1,
                                   output_dir=tmp_path / "run", progress=False,
                                   print_fn=lines.append)
  records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [r["round"] for r in records] == [1, 2, 3, 4, 5, 6] == [h["round"] for h in result.history]
  assert all("client_work/train/loss" in r for r in records)
  assert [("eval/accuracy" in r) for r in records] == [False, True, False, True, False, True]
  assert records[-1]["eval/loss"] < records[1]["eval/loss"]
  assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (tmp_path / "run" / "checkpoint.safetensors").exists()
  assert len(lines) == 6 and lines[0].startswith("round    1/6:")
  # Every round trained on exactly the sampled clients' examples (round n samples round_num n-1).
  ids = data.client_ids
  for r in records:
    chosen = simulation.sample_clients(ids, 3, r["round"] - 1, seed=1)
    expected = sum(3 + 2 * int(c[1:]) for c in chosen)
    assert r["client_work/train/num_examples"] == expected


def test_resumed_run_ends_with_the_same_weights(tmp_path):
  data, model, trainer, evaluation = _setup()
  full = simulation.run_training(trainer, data, rounds=7, clients_per_round=3, seed=2,
                                 progress=False, plot=False, output_dir=tmp_path / "full")
  # Stopped after round 5 (the final round is always saved).
  out = tmp_path / "resumed"
  simulation.run_training(trainer, data, rounds=5, clients_per_round=3, seed=2,
                          progress=False, plot=False, output_dir=out, checkpoint_every=2)
  meta = learning.read_checkpoint_metadata(out / "checkpoint.safetensors")
  assert meta["round"] == 5 and meta["first_round"] == 1
  _, _, trainer2, _ = _setup()  # a new process object, as after a restart
  resumed = simulation.run_training(trainer2, data, rounds=7, clients_per_round=3, seed=2,
                                    progress=False, plot=False, output_dir=out, resume=True)
  a = trainer.get_model_weights(full.state).trainable
  b = trainer2.get_model_weights(resumed.state).trainable
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert [h["round"] for h in resumed.history] == [1, 2, 3, 4, 5, 6, 7]
  for x, y in zip(full.history, resumed.history):
    assert x["client_work/train/loss"] == y["client_work/train/loss"]
  with pytest.raises(ValueError, match="seed"):
    simulation.run_training(trainer2, data, rounds=8, clients_per_round=3, seed=3,
                            progress=False, output_dir=out, resume=True)


def test_run_training_validates_its_arguments(tmp_path):
  data, _, trainer, _ = _setup(num_clients=4)
  with pytest.raises(ValueError, match="clients_per_round=5"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=5, progress=False)
  with pytest.raises(ValueError, match="rounds"):
    simulation.run_training(trainer, data, rounds=0, clients_per_round=1)
  with pytest.raises(ValueError, match="output_dir"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=1, resume=True)


def test_flatten_metrics():
  flat = simulation.flatten_metrics({"client_work": {"train": {"loss": np.float32(0.5)}},
                                     "aggregator": {"mean_value": ()}, "n": np.int32(3)})
  assert flat == {"client_work/train/loss": 0.5, "n": 3}


def test_cached_population_and_prefetched_cohorts_train_the_same(tmp_path):
  data, model, trainer, _ = _setup()
  runs = {}
  for cache in (True, False):
    runs[cache] = simulation.run_training(trainer, data, rounds=4, clients_per_round=3, seed=5,
                                          progress=False, cache_clients=cache)
  a = trainer.get_model_weights(runs[True].state).trainable
  b = trainer.get_model_weights(runs[False].state).trainable
  for k in a:
    np.testing.assert_allclose(a[k], b[k], atol=1e-6)


def test_history_is_kept_without_an_output_folder():
  data, model, trainer, evaluation = _setup()
  lines = []
  result = simulation.run_training(trainer, data, rounds=3, clients_per_round=2, seed=4,
                                   evaluation=evaluation, progress=False, print_fn=lines.append)
  assert result.output_dir is None and result.plot_path is None
  assert [h["round"] for h in result.history] == [1, 2, 3]
  assert all("client_work/train/loss" in h and "eval/accuracy" in h for h in result.history)
  for h in result.history:  # the examples of the sampled clients (client ci has 3 + 2i)
    chosen = simulation.sample_clients(data.client_ids, 2, h["round"] - 1, seed=4)
    assert h["client_work/train/num_examples"] == sum(3 + 2 * int(c[1:]) for c in chosen)


def test_resume_without_a_checkpoint_warns_and_starts_over(tmp_path):
  data, _, trainer, _ = _setup()
  with pytest.warns(UserWarning, match="no checkpoint"):
    result = simulation.run_training(trainer, data, rounds=2, clients_per_round=2,
                                     progress=False, plot=False, output_dir=tmp_path / "new",
                                     resume=True)
  assert [h["round"] for h in result.history] == [1, 2]


def test_interrupted_run_resumes_to_the_same_weights_and_history(tmp_path):
  data, model, trainer, evaluation = _setup()
  full = simulation.run_training(trainer, data, rounds=8, clients_per_round=3, seed=2,
                                 evaluation=evaluation, progress=False, plot=False,
                                 output_dir=tmp_path / "full")
  out = tmp_path / "interrupted"
  rounds_done = []

  def interrupting_evaluation(weights):  # Ctrl-C in the middle of round 6
    rounds_done.append(len(rounds_done))
    if len(rounds_done) == 6:
      raise KeyboardInterrupt
    return evaluation(weights)

  with pytest.raises(KeyboardInterrupt):
    simulation.run_training(trainer, data, rounds=8, clients_per_round=3, seed=2,
                            evaluation=interrupting_evaluation, progress=False, plot=False,
                            output_dir=out, checkpoint_every=2)
  # Rounds 1-5 were logged; the last checkpoint is after round 4.
  assert [json.loads(l)["round"] for l in (out / "metrics.jsonl").read_text().splitlines()] \
      == [1, 2, 3, 4, 5]
  assert learning.read_checkpoint_metadata(out / "checkpoint.safetensors")["round"] == 4
  _, _, trainer2, evaluation2 = _setup()  # new objects, as after a restart
  resumed = simulation.run_training(trainer2, data, rounds=8, clients_per_round=3, seed=2,
                                    evaluation=evaluation2, progress=False, plot=False,
                                    output_dir=out, checkpoint_every=2, resume=True)
  a = trainer.get_model_weights(full.state).trainable
  b = trainer2.get_model_weights(resumed.state).trainable
  for k in a:
    np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=0, atol=1e-6)
  lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert [r["round"] for r in lines] == list(range(1, 9))  # no duplicate rounds
  for history in (resumed.history, lines):
    assert len(history) == len(full.history) == 8
    for x, y in zip(full.history, history):
      assert x.keys() == y.keys()
      for k in x:
        if k != "seconds":
          assert x[k] == pytest.approx(y[k], rel=0, abs=1e-6), (x["round"], k)


def test_min_examples_keeps_small_clients_out():
  data, _, trainer, _ = _setup()  # client ci has 3 + 2i examples: c4..c7 have >= 10
  result = simulation.run_training(trainer, data, rounds=12, clients_per_round=2, seed=0,
                                   progress=False, min_examples=10)
  eligible = ["c4", "c5", "c6", "c7"]
  seen = set()
  for h in result.history:
    chosen = simulation.sample_clients(eligible, 2, h["round"] - 1, seed=0)
    seen.update(chosen)
    assert h["client_work/train/num_examples"] == sum(3 + 2 * int(c[1:]) for c in chosen)
  assert seen == set(eligible)
  with pytest.raises(ValueError, match="only 4 clients have at least 10"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=5, progress=False,
                            min_examples=10)
  with pytest.raises(ValueError, match="No client has at least 100"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=1, progress=False,
                            min_examples=100)


class _FakeWriter:
  instances = []

  def __init__(self, logdir):
    self.logdir, self.scalars, self.closed = logdir, [], False
    _FakeWriter.instances.append(self)

  def add_scalar(self, tag, value, step):
    self.scalars.append((tag, value, step))

  def close(self):
    self.closed = True


def _check_tensorboard_scalars(result, out):
  (writer,) = _FakeWriter.instances
  assert writer.logdir == str(out / "tensorboard") and writer.closed
  expected = [(k, v, h["round"]) for h in result.history for k, v in h.items() if k != "round"]
  assert writer.scalars == expected
  tags = {t for t, _, _ in writer.scalars}
  assert {"client_work/train/loss", "eval/accuracy", "seconds"} <= tags
  assert sorted({s for _, _, s in writer.scalars}) == [1, 2, 3]


def test_tensorboard_scalars_through_tensorboardX(tmp_path, monkeypatch):
  import types
  _FakeWriter.instances = []
  monkeypatch.setitem(sys.modules, "tensorboardX",
                      types.SimpleNamespace(SummaryWriter=_FakeWriter))
  data, _, trainer, evaluation = _setup()
  result = simulation.run_training(trainer, data, rounds=3, clients_per_round=2, progress=False,
                                   plot=False, evaluation=evaluation, output_dir=tmp_path)
  _check_tensorboard_scalars(result, tmp_path)


def test_tensorboard_falls_back_to_torch(tmp_path, monkeypatch):
  import types
  _FakeWriter.instances = []
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # not installed
  torch = types.ModuleType("torch")
  torch.utils = types.ModuleType("torch.utils")
  torch.utils.tensorboard = types.ModuleType("torch.utils.tensorboard")
  torch.utils.tensorboard.SummaryWriter = _FakeWriter
  for name, module in (("torch", torch), ("torch.utils", torch.utils),
                       ("torch.utils.tensorboard", torch.utils.tensorboard),
                       ("tensorboard", types.ModuleType("tensorboard"))):
    monkeypatch.setitem(sys.modules, name, module)
  data, _, trainer, evaluation = _setup()
  result = simulation.run_training(trainer, data, rounds=3, clients_per_round=2, progress=False,
                                   plot=False, evaluation=evaluation, output_dir=tmp_path)
  _check_tensorboard_scalars(result, tmp_path)
  # Neither installed: no writer, and the run goes on.
  _FakeWriter.instances = []
  monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
  simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                          plot=False, output_dir=tmp_path / "none")
  assert _FakeWriter.instances == []


def test_without_matplotlib_no_plot_is_written(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib", None)
  data, _, trainer, _ = _setup()
  result = simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                                   output_dir=tmp_path)
  assert result.plot_path is None and not (tmp_path / "curves.png").exists()


@pytest.mark.parametrize("cache_clients", [True, False])
def test_mismatched_client_data_names_the_client_id(any_backend, cache_clients):
  import fedjit
  data, _, trainer, _ = _setup(num_clients=4)
  arrays = {f"c{i}": (np.zeros((6, 3), np.float32), np.zeros(6, np.int32)) for i in range(4)}
  arrays["c2"] = (np.zeros((6, 5), np.float32), np.zeros(6, np.int32))  # 5 features, not 3
  wrong = ClientData.from_arrays(arrays).preprocess(lambda ds: ds.batch(4))
  with pytest.raises(fedjit.FederatedTypeError) as e:
    # Round 0 samples every client, so the bad one is in the first cohort.
    simulation.run_training(trainer, wrong, rounds=1, clients_per_round=4, progress=False,
                            cache_clients=cache_clients)
  assert "client 'c2'" in str(e.value) and "float32[?,3]" in str(e.value)
  assert "float32[4,5]" in str(e.value)


# ------------------------------------------------- a reused output folder

def test_a_folder_that_holds_a_run_is_refused_unless_resume_or_overwrite(tmp_path):
  from fedjit.simulation._training import RunExistsError
  data, _, trainer, _ = _setup(num_clients=4)
  out = tmp_path / "run"
  out.mkdir()
  (out / "metrics.jsonl").write_text("")  # an empty folder, or no round logged: fine
  (out / "notes.txt").write_text("mine")
  simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                          output_dir=out)
  first = (out / "metrics.jsonl").read_text()
  (out / "tensorboard").mkdir(exist_ok=True)
  (out / "tensorboard" / "events.old").write_text("stale")
  with pytest.raises(RunExistsError, match=r"already holds a run \(checkpoint.safetensors, "
                     r"metrics.jsonl\); pass resume=True to continue it or overwrite=True") as e:
    simulation.run_training(trainer, data, rounds=3, clients_per_round=2, progress=False,
                            output_dir=out)
  assert isinstance(e.value, FileExistsError)
  assert (out / "metrics.jsonl").read_text() == first  # untouched
  with pytest.raises(ValueError, match="not both"):
    simulation.run_training(trainer, data, rounds=3, clients_per_round=2, progress=False,
                            output_dir=out, resume=True, overwrite=True)
  result = simulation.run_training(trainer, data, rounds=2, clients_per_round=2, seed=9,
                                   progress=False, tensorboard=False, output_dir=out,
                                   overwrite=True)
  assert [h["round"] for h in result.history] == [1, 2]
  assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
  meta = learning.read_checkpoint_metadata(out / "checkpoint.safetensors")
  assert meta["round"] == 2 and meta["seed"] == 9
  assert not (out / "tensorboard").exists()  # the old run's, removed
  assert (out / "notes.txt").read_text() == "mine"  # not the run's: kept


def test_overwrite_deletes_nothing_when_the_arguments_are_bad(tmp_path):
  data, _, trainer, _ = _setup(num_clients=4)
  simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                          plot=False, output_dir=tmp_path)
  with pytest.raises(ValueError, match="clients_per_round=9"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=9, progress=False,
                            output_dir=tmp_path, overwrite=True)
  assert (tmp_path / "checkpoint.safetensors").exists()


# ------------------------------------------------------- quiet failures

def _nan_clients():
  rng = np.random.default_rng(1)
  arrays = {}
  for i in range(4):
    x = rng.normal(size=(8, 3)).astype(np.float32)
    arrays[f"c{i}"] = (x, (x[:, 0] > 0).astype(np.int32))
  arrays["c2"][0][5, 1] = np.nan  # one NaN feature in one client
  return ClientData.from_arrays(arrays).preprocess(lambda ds: ds.batch(4))


def _training_warnings(record, match):
  return [w for w in record if issubclass(w.category, simulation.TrainingWarning)
          and match in str(w.message)]


def test_a_nan_in_one_client_leaves_it_out_and_warns_once():
  # As in TFF's model-delta client work: the NaN client gets weight 0 and its
  # metrics are reset, so the round trains on the others and the loss is finite.
  _, _, trainer, _ = _setup()
  lines = []
  with pytest.warns(simulation.TrainingWarning, match="left out of the round") as record:
    result = simulation.run_training(trainer, _nan_clients(), rounds=4, clients_per_round=4,
                                     progress=False, print_fn=lines.append)
  assert all(h["client_work/train/num_non_finite_clients"] == 1 for h in result.history)
  assert all(h["finalizer/update_non_finite"] == 0 for h in result.history)
  assert all(math.isfinite(h["client_work/train/loss"]) for h in result.history)
  assert all(h["client_work/train/num_examples"] == 24 for h in result.history)  # 3 x 8
  (dropped,) = [w for w in record if issubclass(w.category, simulation.TrainingWarning)]
  message = str(dropped.message)
  assert message.startswith("Round 1: 1 client(s)") and "NaN or inf" in message
  assert "'client_work/train/num_non_finite_clients'" in message and "learning rate" in message
  assert dropped.filename == __file__  # points at the caller's line
  assert not any("train_loss nan" in l for l in lines)


def test_non_finite_metrics_are_null_in_strict_json_and_nan_again_on_resume(tmp_path):
  _, model, _, _ = _setup()
  # FedSGD leaves the NaN client out of the update but keeps its loss in the
  # metrics (as TFF's FedSGD does), so the training loss is NaN.
  trainer = learning.algorithms.build_fed_sgd(model)
  def no_constants(name):
    raise AssertionError(f"{name} is not JSON")
  with pytest.warns(simulation.TrainingWarning):
    simulation.run_training(trainer, _nan_clients(), rounds=2, clients_per_round=4,
                            progress=False, output_dir=tmp_path, plot=False)
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(l, parse_constant=no_constants) for l in lines]
  assert [r["client_work/train/loss"] for r in records] == [None, None]
  with pytest.warns(simulation.TrainingWarning):
    result = simulation.run_training(trainer, _nan_clients(), rounds=3, clients_per_round=4,
                                     progress=False, output_dir=tmp_path, plot=False,
                                     resume=True)
  assert [h["round"] for h in result.history] == [1, 2, 3]
  assert all(math.isnan(h["client_work/train/loss"]) for h in result.history)


def test_a_diverging_loss_warns_once_and_prints_in_general_format():
  data, model, _, _ = _setup()
  wild = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(1e9))
  lines = []
  with pytest.warns(simulation.TrainingWarning, match="diverging") as record:
    result = simulation.run_training(wild, data, rounds=3, clients_per_round=4, progress=False,
                                     print_fn=lines.append)
  losses = [h["client_work/train/loss"] for h in result.history]
  assert losses[0] > 1e6, losses
  assert len(_training_warnings(record, "diverging")) == 1
  message = str(_training_warnings(record, "diverging")[0].message)
  assert message.startswith("Round 1: the training loss is ") and "over 1e+06" in message
  assert "Lower the learning rate" in message
  assert f"train_loss {losses[0]:.4g}" in lines[0] and "e+" in lines[0]


@pytest.mark.parametrize("losses, warned_at, why", [
    ([2.3, 2.0, 1500.0, 2500.0, 3000.0], 4, "over 1000 times the smallest loss so far "
     "(round 2's 2)"),
    ([0.0, 5.0, 11.0, 20.0], 3, "(round 1's 0, counted as 0.01)"),
    ([2e6, 1.0], 1, "over 1e+06"),
    ([2.3, 1.2, 0.9, 1.1, 50.0, 0.5], None, None),
])
def test_exploding_loss_rule(losses, warned_at, why):
  from fedjit.simulation._training import _Watch
  watch = _Watch([])
  with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter("always")
    for n, loss in enumerate(losses, 1):
      watch.check(n, {"client_work/train/loss": loss}, {})
  found = [w for w in record if issubclass(w.category, simulation.TrainingWarning)]
  if warned_at is None:
    assert found == []
  else:
    (w,) = found
    assert str(w.message).startswith(f"Round {warned_at}: ") and why in str(w.message)


def test_watch_finds_metrics_anywhere_and_warns_once_per_kind():
  from fedjit.simulation._training import _Watch
  watch = _Watch([{"round": 1, "client_work/train/loss": 2.0}])  # resumed: round 1 known
  with pytest.warns(simulation.TrainingWarning) as record:
    for n in (2, 3, 4):
      watch.check(n, {"stage/0/update_non_finite": 1, "client_work/train/loss": 2.5e3,
                      "client_work/train/num_invalid_labels": 7},
                  {"eval/loss": float("nan"), "eval/num_invalid_labels": 3})
  messages = [str(w.message) for w in record]
  assert len(messages) == 5, messages
  assert sum("'stage/0/update_non_finite'" in m for m in messages) == 1
  assert sum("round 1's 2" in m for m in messages) == 1  # 2500 > 1000 x 2
  assert sum("7 training examples were left out" in m and "0 <= label < number of classes"
             in m for m in messages) == 1
  assert sum("3 evaluation examples were left out" in m for m in messages) == 1
  assert sum("evaluation loss is nan" in m for m in messages) == 1
  assert all(m.startswith("Round 2: ") for m in messages)


def test_labels_out_of_range_warn_once_for_the_run():
  def softmax_cross_entropy_with_integer_labels(y, logits):  # named as optax's: labels checked
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}, lambda p, x: x @ p["w"] + p["b"],
      softmax_cross_entropy_with_integer_labels,
      input_spec=((np.float32, [None, 3]), (np.int32, [None])))
  if not model.checks_labels:
    pytest.skip("this model does not count num_invalid_labels")
  trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.1))
  x = np.ones((6, 3), np.float32)
  data = ClientData.from_arrays({"a": (x, np.array([0, 1, 5, 0, 1, -1], np.int32)),
                                 "b": (x, np.zeros(6, np.int32))}).preprocess(
                                     lambda ds: ds.batch(3))
  with pytest.warns(simulation.TrainingWarning) as record:
    result = simulation.run_training(trainer, data, rounds=3, clients_per_round=2,
                                     progress=False)
  assert [h["client_work/train/num_invalid_labels"] for h in result.history] == [2, 2, 2]
  (w,) = _training_warnings(record, "were left out")
  assert str(w.message).startswith("Round 1: 2 training examples were left out")
  assert "'client_work/train/num_invalid_labels'" in str(w.message)
  assert not [w for w in record if "skipped because" in str(w.message)]  # no per-round repeats


def test_console_numbers_use_a_general_format():
  from fedjit.simulation._training import _short
  assert _short({"client_work/train/loss": 3.349e21, "eval/accuracy": 0.87341,
                 "eval/loss": 0.0512345}) == {
                     "train_loss": "3.349e+21", "eval_accuracy": "0.8734", "eval_loss": "0.05123"}


def test_metrics_are_plain_python_numbers():
  flat = simulation.flatten_metrics({"acc": np.float32(0.1), "ok": np.bool_(True),
                                     "n": np.int64(3), "x": np.float64(0.1)})
  assert flat == {"acc": 0.1, "ok": 1, "n": 3, "x": 0.1}
  assert repr(flat["acc"]) == "0.1" and type(flat["acc"]) is float and type(flat["ok"]) is int


def test_run_info_must_be_json(tmp_path):
  data, _, trainer, _ = _setup(num_clients=4)
  with pytest.raises(TypeError, match="run_info must be JSON-serializable"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                            output_dir=tmp_path, run_info={"model": object()})


# ------------------------------------------------------------ resuming

def test_resume_with_another_process_says_what_wrote_the_checkpoint(tmp_path):
  data, model, trainer, _ = _setup(num_clients=4)
  out = tmp_path / "run"
  simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                          plot=False, output_dir=out,
                          run_info={"algorithm": "fedadam", "dataset": "toy"})
  meta = learning.read_checkpoint_metadata(out / "checkpoint.safetensors")
  assert meta["run"] == {"algorithm": "fedadam", "dataset": "toy", "seed": 0,
                         "clients_per_round": 2, "weights": "2 arrays: 2, 3x2"}
  sgd = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.2))
  with pytest.raises(learning._checkpoint.CheckpointMismatchError) as e:
    simulation.run_training(sgd, data, rounds=2, clients_per_round=2, progress=False,
                            output_dir=out, resume=True,
                            run_info={"algorithm": "fedavg", "dataset": "toy"})
  first, *rest = str(e.value).splitlines()
  assert len(rest) <= 1
  assert first.startswith(f"{out / 'checkpoint.safetensors'} was written by fedadam on toy "
                          f"(seed 0; 2 clients per round; model 2 arrays: 2, 3x2); this run "
                          f"is fedavg on toy (seed 0; 2 clients per round; model 2 arrays: "
                          f"2, 3x2) (algorithm fedadam -> fedavg)")
  assert "Use the same options as that run, or another output_dir." in first
  assert "leaf" not in first and "template" not in first
  assert isinstance(e.value, ValueError)


def test_resume_reports_where_it_starts_and_refuses_fewer_rounds(tmp_path):
  data, _, trainer, _ = _setup(num_clients=4)
  out = tmp_path / "run"
  simulation.run_training(trainer, data, rounds=2, clients_per_round=2, progress=False,
                          plot=False, output_dir=out)
  lines = []
  with pytest.raises(ValueError, match=r"already has 2 rounds; pass rounds > 2 to train more"):
    simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                            output_dir=out, resume=True, print_fn=lines.append)
  same = simulation.run_training(trainer, data, rounds=2, clients_per_round=2, progress=False,
                                 plot=False, output_dir=out, resume=True, print_fn=lines.append)
  assert lines == [f"{out} already has 2 rounds: nothing to train (pass rounds > 2 to train "
                   f"more)"]
  assert [h["round"] for h in same.history] == [1, 2]
  lines.clear()
  more = simulation.run_training(trainer, data, rounds=3, clients_per_round=2, progress=False,
                                 plot=False, output_dir=out, resume=True, print_fn=lines.append)
  assert lines[0] == f"resuming from round 2 of {out}: training round 3"
  assert lines[1].startswith("round    3/3:")
  assert [h["round"] for h in more.history] == [1, 2, 3]
  assert learning.read_checkpoint_metadata(out / "checkpoint.safetensors")["round"] == 3


def test_resume_with_other_recorded_options_warns(tmp_path):
  data, _, trainer, _ = _setup(num_clients=4)
  simulation.run_training(trainer, data, rounds=1, clients_per_round=2, progress=False,
                          plot=False, output_dir=tmp_path, run_info={"dataset": "mnist"})
  with pytest.warns(simulation.TrainingWarning, match=r"with other options: dataset mnist -> "
                    r"fashion_mnist, clients_per_round 2 -> 3"):
    simulation.run_training(trainer, data, rounds=2, clients_per_round=3, progress=False,
                            plot=False, output_dir=tmp_path, resume=True,
                            run_info={"dataset": "fashion_mnist"})


def test_a_checkpoint_with_zero_based_rounds_still_resumes(tmp_path):
  """Checkpoints and metrics written before rounds were 1-based."""
  data, _, trainer, _ = _setup(num_clients=4)
  full = simulation.run_training(trainer, data, rounds=3, clients_per_round=2, seed=3,
                                 progress=False, plot=False)
  out = tmp_path / "old"
  simulation.run_training(trainer, data, rounds=2, clients_per_round=2, seed=3, progress=False,
                          plot=False, output_dir=out)
  ckpt = out / "checkpoint.safetensors"
  state = learning.load_checkpoint(ckpt, trainer.initialize())
  learning.save_checkpoint(ckpt, state, metadata={"round": 1, "seed": 3})  # the old metadata
  records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  (out / "metrics.jsonl").write_text("".join(json.dumps({**r, "round": r["round"] - 1}) + "\n"
                                             for r in records))
  resumed = simulation.run_training(trainer, data, rounds=3, clients_per_round=2, seed=3,
                                    progress=False, plot=False, output_dir=out, resume=True)
  assert [h["round"] for h in resumed.history] == [1, 2, 3]
  a = trainer.get_model_weights(full.state).trainable
  b = trainer.get_model_weights(resumed.state).trainable
  for k in a:
    np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=0, atol=1e-6)


# ----------------------------------------------------------------- plot

def test_plot_has_axis_labels_and_starts_at_round_1(tmp_path, monkeypatch):
  pytest.importorskip("matplotlib")
  import matplotlib.pyplot as plt
  figures = []
  close = plt.close
  monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
  history = [{"round": 1, "client_work/train/loss": 2.3, "eval/accuracy": 0.2},
             {"round": 2, "client_work/train/loss": 1.9, "eval/accuracy": 0.4}]
  assert simulation.plot_curves(history, tmp_path / "curves.png") == tmp_path / "curves.png"
  (fig,) = figures
  loss_ax, acc_ax = fig.axes
  assert (loss_ax.get_ylabel(), acc_ax.get_ylabel()) == ("loss", "accuracy")
  assert loss_ax.get_xlabel() == acc_ax.get_xlabel() == "round"
  assert list(loss_ax.lines[0].get_xdata()) == [1, 2]
  close(fig)
