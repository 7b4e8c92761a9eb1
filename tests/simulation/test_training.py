"""The round loop: sampling, logs, plot, checkpoints and resume."""

import json

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
