"""fedjit.simulation.Population: client data padded once, cohorts by index."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import softmax3_model as _model

import fedjit
from fedjit import learning, simulation
from fedjit.core import FederatedTypeError

LR = 0.3


def _client_data(sizes, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {}
  for i, n in enumerate(sizes):
    x = rng.normal(size=(n, 3)).astype(np.float32)
    arrays[f"c{i:03d}"] = (x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32))
  return arrays


def _batches(x, y, size=4):
  return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def _numpy_fed_avg(clients):
  """One round of weighted FedAvg of softmax regression, in NumPy (float64)."""
  w, b = np.zeros((3, 2)), np.zeros(2)
  total_w, sum_w, sum_b = 0, np.zeros((3, 2)), np.zeros(2)
  for batches in clients:
    cw, cb, n = w.copy(), b.copy(), 0
    for x, y in batches:
      logits = x @ cw + cb
      p = np.exp(logits - logits.max(axis=1, keepdims=True))
      p /= p.sum(axis=1, keepdims=True)
      p[np.arange(len(y)), y] -= 1.0  # d(mean CE)/d logits, times the batch size
      cw -= LR * x.T @ p / len(y)
      cb -= LR * p.sum(axis=0) / len(y)
      n += len(y)
    sum_w += n * cw
    sum_b += n * cb
    total_w += n
  return sum_w / total_w, sum_b / total_w


@pytest.mark.parametrize("backend", ["reference", "vectorized"])
def test_cohort_round_equals_numpy_fed_avg(backend):
  arrays = _client_data([1, 3, 4, 7, 9, 17, 2, 30, 5, 6] * 8, seed=1)
  train = simulation.ClientData.from_clients_and_fn(
      list(arrays), lambda cid: simulation.Dataset.from_batches(_batches(*arrays[cid])))
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(LR))
  population = simulation.Population(trainer, train)
  assert len(population) == 80 and population.client_ids[:2] == ["c000", "c001"]
  ids = simulation.sample_clients(train.client_ids, 70, round_num=3)
  expected_w, expected_b = _numpy_fed_avg([_batches(*arrays[c]) for c in ids])
  with fedjit.backend(backend):
    got = trainer.next(trainer.initialize(), population.cohort(ids))
  weights = got.state.global_model_weights.trainable
  np.testing.assert_allclose(weights["w"], expected_w, atol=1e-5)
  np.testing.assert_allclose(weights["b"], expected_b, atol=1e-5)
  assert got.metrics["client_work"]["train"]["num_examples"] == sum(
      len(arrays[c][0]) for c in ids)


def test_cohort_equals_lists_and_compiles_once_over_random_rounds():
  arrays = _client_data(np.minimum(np.random.default_rng(2).zipf(1.7, 120), 40), seed=2)
  datasets = {cid: _batches(*a) for cid, a in arrays.items()}
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(LR))
  population = simulation.Population(trainer.next, datasets)  # a dict, and the computation
  assert population.nbytes > 0 and "120 clients" in repr(population)
  cohorts = [simulation.sample_clients(list(datasets), 20, round_num=r, seed=7)
             for r in range(12)]
  with fedjit.backend("vectorized"):
    before = fedjit.get_backend().compilations(trainer.next)
    state_p = state_l = trainer.initialize()
    for ids in cohorts:
      state_p = trainer.next(state_p, population.cohort(ids)).state
    # Cohorts of one size from one population have one shape: one compilation.
    assert fedjit.get_backend().compilations(trainer.next) == before + 1
    for ids in cohorts:
      state_l = trainer.next(state_l, [datasets[c] for c in ids]).state
  for k in ("w", "b"):
    np.testing.assert_allclose(state_p.global_model_weights.trainable[k],
                               state_l.global_model_weights.trainable[k], atol=1e-5)


def test_list_of_datasets_gets_positions_as_ids():
  arrays = _client_data([2, 5, 3])
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(LR))
  population = simulation.Population(trainer, [_batches(*a) for a in arrays.values()])
  assert population.client_ids == [0, 1, 2]
  with fedjit.backend("vectorized"):
    got = trainer.next(trainer.initialize(), population.cohort([2, 0]))
  assert got.metrics["client_work"]["train"]["num_examples"] == 5


def test_errors_say_what_was_expected():
  arrays = _client_data([2, 5, 3])
  datasets = {cid: _batches(*a) for cid, a in arrays.items()}
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(LR))
  population = simulation.Population(trainer, datasets)
  with pytest.raises(KeyError, match="1 client id.*'nobody'.*'c000'"):
    population.cohort(["c000", "nobody"])
  with pytest.raises(ValueError, match="at least one client"):
    population.cohort([])
  with pytest.raises(ValueError, match="empty"):
    simulation.Population(trainer, {})
  with pytest.raises(TypeError, match="ClientData, a dict"):
    simulation.Population(trainer, 42)
  with pytest.raises(TypeError, match="client data's type"):
    simulation.Population(object(), datasets)
  # A client whose data do not fit is named by its id.
  bad = dict(datasets, c001=[(np.zeros((2, 4), np.float32), np.zeros(2, np.int32))])
  with pytest.raises(FederatedTypeError, match="client 'c001'"):
    simulation.Population(trainer, bad)
  # A cohort of other elements, passed to a process that takes these.
  other = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((5, 2))}, lambda p, x: x @ p["w"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 5]), (np.int32, [None])))
  other_trainer = learning.algorithms.build_weighted_fed_avg(
      other, learning.optimizers.build_sgdm(LR))
  wide = simulation.Population(other_trainer, [[(np.ones((2, 5), np.float32),
                                                  np.zeros(2, np.int32))]])
  for backend in ("vectorized", "reference"):
    with fedjit.backend(backend), pytest.raises(FederatedTypeError, match="prepared cohort"):
      trainer.next(trainer.initialize(), wide.cohort([0]))
