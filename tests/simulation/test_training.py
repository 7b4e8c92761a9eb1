"""The round loop: sampling, logs, plot, checkpoints and resume."""

import json
import sys

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
  assert [r["round"] for r in records] == list(range(6)) == [h["round"] for h in result.history]
  assert all("client_work/train/loss" in r for r in records)
  assert [("eval/accuracy" in r) for r in records] == [False, True, False, True, False, True]
  assert records[-1]["eval/loss"] < records[1]["eval/loss"]
  assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (tmp_path / "run" / "checkpoint.safetensors").exists()
  assert len(lines) == 6 and lines[0].startswith("round    1/6:")
  # Every round trained on exactly the sampled clients' examples.
  ids = data.client_ids
  for r in records:
    chosen = simulation.sample_clients(ids, 3, r["round"], seed=1)
    expected = sum(3 + 2 * int(c[1:]) for c in chosen)
    assert r["client_work/train/num_examples"] == expected


def test_resumed_run_ends_with_the_same_weights(tmp_path):
  data, model, trainer, evaluation = _setup()
  full = simulation.run_training(trainer, data, rounds=7, clients_per_round=3, seed=2,
                                 progress=False, plot=False, output_dir=tmp_path / "full")
  # Interrupted after round 4 (checkpoint every 2 rounds, so the last one is round 4).
  out = tmp_path / "resumed"
  simulation.run_training(trainer, data, rounds=5, clients_per_round=3, seed=2,
                          progress=False, plot=False, output_dir=out, checkpoint_every=2)
  meta = learning.read_checkpoint_metadata(out / "checkpoint.safetensors")
  assert meta["round"] == 4
  _, _, trainer2, _ = _setup()  # a new process object, as after a restart
  resumed = simulation.run_training(trainer2, data, rounds=7, clients_per_round=3, seed=2,
                                    progress=False, plot=False, output_dir=out, resume=True)
  a = trainer.get_model_weights(full.state).trainable
  b = trainer2.get_model_weights(resumed.state).trainable
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert [h["round"] for h in resumed.history] == list(range(7))
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
  assert [h["round"] for h in result.history] == [0, 1, 2]
  assert all("client_work/train/loss" in h and "eval/accuracy" in h for h in result.history)
  for h in result.history:  # the examples of the sampled clients (client ci has 3 + 2i)
    chosen = simulation.sample_clients(data.client_ids, 2, h["round"], seed=4)
    assert h["client_work/train/num_examples"] == sum(3 + 2 * int(c[1:]) for c in chosen)


def test_resume_without_a_checkpoint_warns_and_starts_over(tmp_path):
  data, _, trainer, _ = _setup()
  with pytest.warns(UserWarning, match="no checkpoint"):
    result = simulation.run_training(trainer, data, rounds=2, clients_per_round=2,
                                     progress=False, plot=False, output_dir=tmp_path / "new",
                                     resume=True)
  assert [h["round"] for h in result.history] == [0, 1]


def test_interrupted_run_resumes_to_the_same_weights_and_history(tmp_path):
  data, model, trainer, evaluation = _setup()
  full = simulation.run_training(trainer, data, rounds=8, clients_per_round=3, seed=2,
                                 evaluation=evaluation, progress=False, plot=False,
                                 output_dir=tmp_path / "full")
  out = tmp_path / "interrupted"
  rounds_done = []

  def interrupting_evaluation(weights):  # Ctrl-C in the middle of round 5 (0-based)
    rounds_done.append(len(rounds_done))
    if len(rounds_done) == 6:
      raise KeyboardInterrupt
    return evaluation(weights)

  with pytest.raises(KeyboardInterrupt):
    simulation.run_training(trainer, data, rounds=8, clients_per_round=3, seed=2,
                            evaluation=interrupting_evaluation, progress=False, plot=False,
                            output_dir=out, checkpoint_every=2)
  # Rounds 0-4 were logged; the last checkpoint is after round 3.
  assert [json.loads(l)["round"] for l in (out / "metrics.jsonl").read_text().splitlines()] \
      == [0, 1, 2, 3, 4]
  assert learning.read_checkpoint_metadata(out / "checkpoint.safetensors")["round"] == 3
  _, _, trainer2, evaluation2 = _setup()  # new objects, as after a restart
  resumed = simulation.run_training(trainer2, data, rounds=8, clients_per_round=3, seed=2,
                                    evaluation=evaluation2, progress=False, plot=False,
                                    output_dir=out, checkpoint_every=2, resume=True)
  a = trainer.get_model_weights(full.state).trainable
  b = trainer2.get_model_weights(resumed.state).trainable
  for k in a:
    np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), rtol=0, atol=1e-6)
  lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  assert [r["round"] for r in lines] == list(range(8))  # no duplicate rounds
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
    chosen = simulation.sample_clients(eligible, 2, h["round"], seed=0)
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
  assert sorted({s for _, _, s in writer.scalars}) == [0, 1, 2]


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
