"""Simulated deployment: the server's state machine against simulated clients."""

import jax
import numpy as np
import pytest

from conftest import batched_clients, softmax3_model

import fedjit
from fedjit import deploy, learning


def _setup(n=120):
  trainer = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  clients = {f"c{i:03d}": d for i, d in enumerate(batched_clients([4] * n))}
  return trainer, clients


CONFIG = deploy.RoundConfig(goal_count=10, min_reports=8, selection_timeout=120.0,
                            reporting_deadline=60.0)


def test_each_committed_round_is_the_process_round_on_the_clients_that_reported(tmp_path):
  trainer, clients = _setup()
  history = deploy.simulate_deployment(
      trainer, clients, rounds=3, config=CONFIG, seed=1,
      availability=deploy.Availability(dropout=0.2, latency_median=30, latency_sigma=0.6,
                                       checkin_interval=60))
  committed = [h for h in history if h["status"] == "committed"]
  assert [h["round"] for h in committed] == [1, 2, 3]
  # Replaying the same cohorts through the process gives the same model.
  state = trainer.initialize()
  for h in committed:
    assert 8 <= h["reports"] <= 10 == CONFIG.goal_count
    assert h["selected"] == CONFIG.selection_count == 13
    assert len(h["clients"]) == h["reports"] == len(set(h["clients"]))
    state = trainer.next(state, [clients[c] for c in h["clients"]]).state
    jax.tree_util.tree_map(np.testing.assert_allclose,
                           trainer.get_model_weights(state).trainable,
                           trainer.get_model_weights(h["state"]).trainable)
    assert h["metrics"]["client_work/train/num_examples"] == 4 * h["reports"]
    assert h["end"] > h["start"]


def test_a_restarted_server_resumes_after_its_last_committed_round(tmp_path):
  trainer, clients = _setup()
  path = tmp_path / "server.db"
  first = deploy.simulate_deployment(trainer, clients, rounds=2, config=CONFIG,
                                     store_path=path, seed=2)
  second = deploy.simulate_deployment(trainer, clients, rounds=1, config=CONFIG,
                                      store_path=path, seed=3)
  (h,) = [h for h in second if h["status"] == "committed"]
  assert h["round"] == 3
  before = [x for x in first if x["status"] == "committed"][-1]["state"]
  expected = trainer.next(before, [clients[c] for c in h["clients"]]).state
  jax.tree_util.tree_map(np.testing.assert_allclose,
                         trainer.get_model_weights(expected).trainable,
                         trainer.get_model_weights(h["state"]).trainable)


def test_unreachable_quorums_abandon_and_then_fail_clearly(tmp_path):
  trainer, clients = _setup(40)
  # Most clients drop out: rounds are abandoned, then the simulation gives up.
  with pytest.raises(RuntimeError, match="0 of 2 round\\(s\\) committed in 4 attempts.*"
                                         "needed.*Lower min_reports"):
    deploy.simulate_deployment(
        trainer, clients, rounds=2, config=CONFIG, max_attempts=4, seed=0,
        availability=deploy.Availability(dropout=0.9))
  with pytest.raises(ValueError, match="only 5 clients"):
    deploy.simulate_deployment(trainer, dict(list(clients.items())[:5]), rounds=1,
                               config=CONFIG)


def test_availability_checks_its_arguments():
  for kwargs, match in [({"dropout": 1.0}, "dropout"), ({"latency_median": 0}, "latency_median"),
                        ({"diurnal_amplitude": 1.0}, "diurnal_amplitude"),
                        ({"checkin_interval": float("nan")}, "checkin_interval")]:
    with pytest.raises(ValueError, match=match):
      deploy.Availability(**kwargs)
  with pytest.raises(TypeError, match="RoundConfig"):
    deploy.simulate_deployment(None, {}, rounds=1, config={"goal_count": 3})
