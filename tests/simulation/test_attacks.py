"""Simulated Byzantine clients: each attack's values checked row by row
against NumPy, from the honest rows of the same round."""

import collections

import numpy as np
import pytest
from scipy.stats import norm as _normal

import fedjit
from fedjit import learning
from fedjit.learning.aggregators import MeanFactory, UnweightedAggregationFactory, UnweightedMeanFactory
from fedjit.learning.templates import AggregationProcess, MeasuredProcessOutput
from fedjit.simulation import ClientData, Dataset
from fedjit.simulation.attacks import ByzantineFactory, flip_labels

V = fedjit.TensorType(np.float32, [6])


class Collect(UnweightedAggregationFactory):
  """What the server receives, row by row (a test probe)."""

  def create(self, value_type):
    @fedjit.federated_computation
    def init():
      return fedjit.federated_value((), fedjit.SERVER)

    @fedjit.federated_computation(init.type_signature.result,
                                  fedjit.FederatedType(value_type, fedjit.CLIENTS))
    def next_fn(state, value):
      return MeasuredProcessOutput(state, fedjit.federated_collect(value),
                                   fedjit.federated_value((), fedjit.SERVER))
    return AggregationProcess(init, next_fn)


def _values(n=40, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=6).astype(np.float32) for _ in range(n)]


def _split(sent, values):
  sent = np.asarray(sent)
  honest = np.array([np.array_equal(s, v) for s, v in zip(sent, values)])
  return sent, honest


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
@pytest.mark.parametrize("attack", ["sign_flip", "scaling", "ipm", "alie"])
def test_byzantine_rows_follow_the_attack(attack, backend):
  values = _values()
  process = ByzantineFactory(Collect(), attack, fraction=0.3, seed=1).create(V)
  with fedjit.backend(backend):
    out = process.next(process.initialize(), values)
  sent, honest = _split(out.result, values)
  f = int(out.measurements["byzantine_count"])
  assert f == int((~honest).sum()) and 0 < f < len(values)
  x = np.array(values, np.float64)
  mu, sigma = x[honest].mean(axis=0), x[honest].std(axis=0)
  n = len(values)
  if attack == "sign_flip":
    expected = -x[~honest]
  elif attack == "scaling":
    expected = 100 * x[~honest]
  elif attack == "ipm":
    expected = np.tile(-0.1 * mu, (f, 1))
  else:
    s = np.floor(n / 2 + 1) - f
    z = _normal.ppf((n - s) / n)
    expected = np.tile(mu - z * sigma, (f, 1))
  np.testing.assert_allclose(sent[~honest], expected, rtol=1e-4, atol=1e-5)


def test_gaussian_rows_are_noise_of_the_given_scale():
  values = _values(200)
  process = ByzantineFactory(Collect(), "gaussian", fraction=0.5, scale=3.0, seed=2).create(V)
  out = process.next(process.initialize(), values)
  sent, honest = _split(out.result, values)
  assert abs(sent[~honest].std() / 3.0 - 1) < 0.1


def test_fraction_zero_changes_nothing_and_rounds_draw_new_clients():
  values = _values()
  plain = UnweightedMeanFactory().create(V)
  attacked = ByzantineFactory(UnweightedMeanFactory(), "sign_flip", fraction=0.0).create(V)
  a = plain.next(plain.initialize(), values).result
  out = attacked.next(attacked.initialize(), values)
  np.testing.assert_allclose(out.result, a, rtol=1e-6)
  assert int(out.measurements["byzantine_count"]) == 0
  probe = ByzantineFactory(Collect(), "sign_flip", fraction=0.5, seed=3).create(V)
  first = probe.next(probe.initialize(), values)
  second = probe.next(first.state, values)
  assert not np.array_equal(_split(first.result, values)[1], _split(second.result, values)[1])


def test_weighted_inner_and_inflated_weights():
  values = [np.ones(6, np.float32) * (i + 1) for i in range(30)]
  weights = [np.float32(1.0)] * 30
  factory = ByzantineFactory(MeanFactory(), "scaling", fraction=0.3, scale=1.0,
                             weight_multiplier=10.0, seed=4)
  assert isinstance(factory, learning.aggregators.WeightedAggregationFactory)
  process = factory.create(V, fedjit.TensorType(np.float32))
  out = process.next(process.initialize(), values, weights)
  # scale 1: Byzantine clients send their own value, with 10x the weight.
  f = int(out.measurements["byzantine_count"])
  assert 0 < f < 30
  honest_mean = float(np.mean([v[0] for v in values]))
  assert not np.isclose(float(out.result[0]), honest_mean)  # the inflated weights moved it


def test_a_sign_flipping_fraction_moves_fed_avg_and_the_process_reports_it():
  from conftest import batched_clients, softmax3_model
  model = softmax3_model()
  data = batched_clients([4] * 20, seed=5)
  clean = learning.algorithms.build_unweighted_fed_avg(model, learning.optimizers.build_sgdm(0.5))
  attacked = learning.algorithms.build_unweighted_fed_avg(
      model, learning.optimizers.build_sgdm(0.5),
      model_aggregator=ByzantineFactory(UnweightedMeanFactory(), "scaling", 0.3, seed=0))
  a = clean.next(clean.initialize(), data)
  b = attacked.next(attacked.initialize(), data)
  assert b.metrics["aggregator"]["byzantine_count"] > 0
  assert np.abs(b.state.global_model_weights.trainable["w"]
                - a.state.global_model_weights.trainable["w"]).max() > 0.1


def test_flip_labels_poisons_only_the_chosen_clients():
  batches = {c: [(np.zeros((2, 3), np.float32), np.array([0, 3], np.int32))] for c in "abc"}
  data = ClientData.from_clients_and_fn(list(batches), lambda c: Dataset.from_batches(batches[c]))
  poisoned = flip_labels(data, ["b"], num_classes=10)
  assert list(poisoned.create_dataset_for_client("a"))[0][1].tolist() == [0, 3]
  assert list(poisoned.create_dataset_for_client("b"))[0][1].tolist() == [9, 6]
  with pytest.raises(KeyError, match="not in the client data"):
    flip_labels(data, ["z"], num_classes=10)
  with pytest.raises(ValueError, match="num_classes >= 2"):
    flip_labels(data, ["a"], num_classes=1)


def test_errors():
  with pytest.raises(ValueError, match="Unknown attack 'nope'"):
    ByzantineFactory(UnweightedMeanFactory(), "nope", 0.1)
  with pytest.raises(ValueError, match=r"fraction in \[0, 1\)"):
    ByzantineFactory(UnweightedMeanFactory(), "ipm", 1.0)
  with pytest.raises(TypeError, match="wraps an aggregation factory"):
    ByzantineFactory(object(), "ipm", 0.1)
  with pytest.raises(TypeError, match="int seed"):
    ByzantineFactory(UnweightedMeanFactory(), "ipm", 0.1, seed=1.5)
