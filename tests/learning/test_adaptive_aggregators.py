"""Adaptive clipping and zeroing, adaptive SecureSumFactory bounds, and
`robust_aggregator` / `secure_aggregator` (TFF's compositions)."""

import collections
import math

import numpy as np
import pytest

import fedjit
from fedjit import TensorType
from fedjit.aggregators import (MeanFactory, PrivateQuantileEstimationProcess,
                                SecureSumFactory, UnweightedAggregationFactory,
                                UnweightedMeanFactory, WeightedAggregationFactory,
                                clipping_factory, zeroing_factory)
from fedjit.learning import algorithms, optimizers

from test_algorithms import _clients, _model

F32 = TensorType(np.float32)
F32x2 = TensorType(np.float32, [2])
no_noise = PrivateQuantileEstimationProcess.no_noise


def test_adaptive_clipping_converges_to_the_target_quantile():
  rng = np.random.default_rng(0)
  values = rng.lognormal(1.0, 0.5, 100).astype(np.float32)  # the norms, one per client
  process = clipping_factory(no_noise(1.0, 0.8, 0.2), UnweightedMeanFactory()).create(F32)
  state, clips = process.initialize(), []
  for _ in range(60):
    out = process.next(state, list(values))
    state = out.state
    clips.append(float(out.measurements["clipping_norm"]))
  np.testing.assert_allclose(np.mean(clips[-20:]), np.quantile(values, 0.8), rtol=0.05)
  # The last round clipped the values above its norm, and counted them.
  assert int(out.measurements["clipped_count"]) == int((values > clips[-1]).sum())
  np.testing.assert_allclose(out.result, np.minimum(values, clips[-1]).mean(), rtol=1e-5)


def test_adaptive_zeroing_zeroes_an_outsized_client_and_updates_by_hand(backend):
  factory = zeroing_factory(no_noise(10.0, 0.98, math.log(10.0), multiplier=2.0,
                                     increment=1.0), MeanFactory())
  assert isinstance(factory, WeightedAggregationFactory)
  process = factory.create(F32x2)
  values = [np.array([0.5, -2.0], np.float32), np.array([1e6, 0.0], np.float32),
            np.array([0.0, 15.0], np.float32), np.array([3.0, 1.0], np.float32)]
  state = process.initialize()
  assert list(state) == ["zeroing_norm", "inner_agg", "zeroed_count_agg"]
  out = process.next(state, values, [1.0, 1.0, 1.0, 1.0])
  m = out.measurements
  assert list(m) == ["zeroing", "zeroing_norm", "zeroed_count"]
  assert float(m["zeroing_norm"]) == 21.0 and int(m["zeroed_count"]) == 1
  np.testing.assert_allclose(out.result, [3.5 / 4, 14.0 / 4], rtol=1e-6)
  # l-infinity norms 2, 1e6, 15, 3: two are <= the estimate 10.
  estimate = 10.0 * math.exp(-math.log(10.0) * (2 / 4 - 0.98))
  np.testing.assert_allclose(out.state["zeroing_norm"], estimate, rtol=1e-5)
  out = process.next(out.state, values, [1.0, 1.0, 1.0, 1.0])
  np.testing.assert_allclose(out.measurements["zeroing_norm"], 2 * estimate + 1, rtol=1e-5)


def test_adaptive_clipping_with_a_weighted_and_an_unweighted_inner_factory():
  values = [np.array([3.0, 4.0], np.float32), np.array([0.3, 0.4], np.float32)]
  weighted = clipping_factory(no_noise(1.0, 0.5, 0.2), MeanFactory()).create(F32x2)
  out = weighted.next(weighted.initialize(), values, [1.0, 3.0])
  np.testing.assert_allclose(out.result, (np.array([0.6, 0.8]) + 3 * np.array([0.3, 0.4])) / 4,
                             rtol=1e-5)
  assert list(out.measurements) == ["clipping", "clipping_norm", "clipped_count"]
  assert int(out.measurements["clipped_count"]) == 1
  np.testing.assert_allclose(out.state["clipping_norm"], math.exp(-0.2 * (0.5 - 0.5)))
  unweighted = clipping_factory(no_noise(1.0, 0.5, 0.2), UnweightedMeanFactory())
  assert isinstance(unweighted, UnweightedAggregationFactory)
  process = unweighted.create(F32x2)
  out = process.next(process.initialize(), values)
  np.testing.assert_allclose(out.result, (np.array([0.6, 0.8]) + np.array([0.3, 0.4])) / 2,
                             rtol=1e-5)


def test_secure_sum_with_an_adaptive_bound(backend):
  process = SecureSumFactory(no_noise(2.0, 0.5, 1.0, multiplier=2.0,
                                      secure_estimation=True)).create(F32x2)
  values = [np.array([1.0, -0.5], np.float32), np.array([9.0, 0.0], np.float32),
            np.array([0.5, -6.0], np.float32), np.array([1.5, 1.0], np.float32)]
  out = process.next(process.initialize(), values)
  m = out.measurements
  assert (float(m["secure_upper_threshold"]), float(m["secure_lower_threshold"])) == (4.0, -4.0)
  assert (int(m["secure_upper_clipped_count"]), int(m["secure_lower_clipped_count"])) == (1, 1)
  np.testing.assert_allclose(out.result, [1.0 + 4.0 + 0.5 + 1.5, -0.5 - 4.0 + 1.0], atol=1e-4)
  # max(|max|, |min|) per client: 1, 9, 6, 1.5; two are <= the estimate 2.
  np.testing.assert_allclose(out.state, 2.0 * math.exp(-1.0 * (2 / 4 - 0.5)), rtol=1e-6)
  fedjit.privacy_report(process).check()


def test_secure_sum_with_two_adaptive_bounds():
  upper, lower = no_noise(3.0, 0.5, 1.0), no_noise(1.0, 0.5, 1.0)
  process = SecureSumFactory(upper, lower).create(F32)
  out = process.next(process.initialize(), [0.5, 2.0, 5.0])
  # This round's bounds are [1, 3]: 0.5 -> 1, 5 -> 3.
  np.testing.assert_allclose(out.result, 1.0 + 2.0 + 3.0, atol=1e-5)
  new_upper, new_lower = out.state
  np.testing.assert_allclose(new_upper, 3.0 * math.exp(-(2 / 3 - 0.5)), rtol=1e-6)
  np.testing.assert_allclose(new_lower, 1.0 * math.exp(-(1 / 3 - 0.5)), rtol=1e-6)


def test_adaptive_bounds_are_checked():
  with pytest.raises(TypeError, match="must have the same types"):
    SecureSumFactory(no_noise(1.0, 0.5, 0.2), 1.0)
  with pytest.raises(TypeError, match="int or float constant, or a fedjit.templates"):
    SecureSumFactory("adaptive")
  with pytest.raises(TypeError, match="configured for floating values"):
    SecureSumFactory(no_noise(1.0, 0.5, 0.2)).create(TensorType(np.int32))
  with pytest.raises(TypeError, match="clipping_norm to be a fixed clipping norm .*"
                                      "EstimationProcess"):
    clipping_factory(object(), MeanFactory())

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_value(np.float32(1.0), fedjit.SERVER)

  f32_server = fedjit.FederatedType(np.float32, fedjit.SERVER)

  @fedjit.federated_computation(f32_server)
  def next_fn(state):
    return state

  one_argument = fedjit.templates.EstimationProcess(initialize_fn, next_fn, next_fn)
  with pytest.raises(TypeError, match="zeroing_norm.next must take two arguments"):
    zeroing_factory(one_argument, MeanFactory())


def _train(aggregator, rounds=2):
  trainer = algorithms.build_weighted_fed_avg(
      _model(), optimizers.build_sgdm(1.0), model_aggregator=aggregator)
  state = trainer.initialize()
  for _ in range(rounds):
    result = trainer.next(state, _clients(sizes=(8, 4, 8)))
    state = result.state
  p = trainer.get_model_weights(state).trainable
  return np.concatenate([np.ravel(p["w"]), np.ravel(p["b"])]), result.metrics["aggregator"]


def test_robust_and_secure_aggregators_train_alike(backend):
  with fedjit.backend(backend):
    plain, _ = _train(MeanFactory())
    robust, m_robust = _train(fedjit.learning.robust_aggregator())
    secure, m_secure = _train(fedjit.learning.secure_aggregator())
  assert list(m_robust) == ["zeroing", "zeroing_norm", "zeroed_count"]
  assert list(m_robust["zeroing"]) == ["clipping", "clipping_norm", "clipped_count"]
  assert list(m_secure["zeroing"]["clipping"]["mean_value"]) == [
      "secure_upper_clipped_count", "secure_lower_clipped_count", "secure_upper_threshold",
      "secure_lower_threshold"]
  assert float(m_secure["zeroing"]["clipping"]["mean_value"]["secure_upper_threshold"]) > 0
  # Round 1 clipped all 3 updates (norm > 1): the clip grew by exp(0.2 * 0.8).
  np.testing.assert_allclose(m_robust["zeroing"]["clipping_norm"], math.exp(0.2 * 0.8),
                             rtol=1e-5)
  assert np.all(np.isfinite(robust)) and not np.allclose(robust, plain)
  # The same clipping and zeroing; the secure sums only quantize.
  np.testing.assert_allclose(secure, robust, atol=1e-3)


def test_secure_aggregator_reveals_only_sums():
  trainer = algorithms.build_weighted_fed_avg(
      _model(), optimizers.build_sgdm(0.1),
      model_aggregator=fedjit.learning.secure_aggregator())
  report = fedjit.privacy_report(trainer).check()
  assert all(f.reveals == "aggregate" for f in report.flows)
  # Only the metrics are summed in the clear; every flow of the update is secure.
  assert [f.intrinsic for f in report.flows if not f.secure] == ["federated_sum"]
  assert sum(f.secure for f in report.flows) > 4


def test_unweighted_compositions():
  robust = fedjit.learning.robust_aggregator(weighted=False, zeroing=False)
  secure = fedjit.learning.secure_aggregator(weighted=False, clipping=False)
  assert isinstance(robust, UnweightedAggregationFactory)
  assert isinstance(secure, UnweightedAggregationFactory)
  process = secure.create(F32)
  out = process.next(process.initialize(), [1.0, 2.0, 3.0, 1e6])
  assert list(out.measurements) == ["zeroing", "zeroing_norm", "zeroed_count"]
  assert int(out.measurements["zeroed_count"]) == 1
  np.testing.assert_allclose(out.result, 6.0 / 4, atol=1e-3)
  assert isinstance(fedjit.learning.robust_aggregator(zeroing=False, clipping=False),
                    MeanFactory)


def test_aggregator_arguments_are_checked():
  with pytest.raises(TypeError, match="debug_measurements_fn must be None"):
    fedjit.learning.robust_aggregator(debug_measurements_fn=lambda f: f)
  with pytest.raises(TypeError, match="weighted to be True or False"):
    fedjit.learning.secure_aggregator(weighted="yes")
  with pytest.raises(TypeError):
    fedjit.learning.robust_aggregator(True)  # keyword-only, as in TFF


def test_dp_aggregator_keeps_its_state_and_measurement_names():
  process = fedjit.learning.dp_aggregator(0.0, 3).create(F32x2)
  state = process.initialize()
  assert list(state) == ["zeroing_norm", "inner_agg", "zeroed_count_agg"]
  assert float(state["zeroing_norm"]) == 10.0
  assert isinstance(state, collections.OrderedDict)
