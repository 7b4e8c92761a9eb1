"""UpdateValidationFactory: bad client updates are rejected, counted and never averaged."""

import numpy as np
import pytest

from conftest import batched_clients, softmax3_model

import fedjit
from fedjit import learning
from fedjit.aggregators import UpdateValidationFactory

VALUE = fedjit.StructType([("w", fedjit.TensorType(np.float32, [2])),
                           ("b", fedjit.TensorType(np.float32))])
WEIGHT = fedjit.TensorType(np.float32)


def _updates():
  rng = np.random.default_rng(0)
  values = [{"w": rng.normal(size=2).astype(np.float32), "b": np.float32(rng.normal())}
            for _ in range(6)]
  weights = [np.float32(w) for w in (1.0, 2.0, 3.0, 1.0, 2.0, 1.0)]
  values[1]["w"] = np.array([np.nan, 0.0], np.float32)   # non-finite value
  weights[2] = np.float32(-1.0)                            # negative weight
  values[3] = {"w": np.array([30.0, 40.0], np.float32), "b": np.float32(0.0)}  # norm 50
  weights[5] = np.float32(np.inf)                          # non-finite weight
  return values, weights


def _numpy_mean(values, weights, accepted):
  total_w = sum(float(weights[i]) for i in accepted)
  return {k: sum(float(weights[i]) * np.asarray(values[i][k], np.float64) for i in accepted)
          / total_w for k in ("w", "b")}


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
def test_rejected_updates_are_left_out_and_counted(backend):
  values, weights = _updates()
  process = UpdateValidationFactory(norm_bound=10.0).create(VALUE, WEIGHT)
  with fedjit.backend(backend):
    out = process.next(process.initialize(), values, weights)
  expected = _numpy_mean(values, weights, accepted=[0, 4])
  np.testing.assert_allclose(out.result["w"], expected["w"], rtol=1e-5)
  np.testing.assert_allclose(out.result["b"], expected["b"], rtol=1e-5)
  m = out.measurements
  assert (int(m["accepted"]), int(m["rejected_non_finite"]), int(m["rejected_weight"]),
          int(m["rejected_norm"])) == (2, 2, 1, 1)


def test_without_a_norm_bound_large_updates_pass():
  values, weights = _updates()
  process = UpdateValidationFactory().create(VALUE, WEIGHT)
  out = process.next(process.initialize(), values, weights)
  expected = _numpy_mean(values, weights, accepted=[0, 3, 4])
  np.testing.assert_allclose(out.result["w"], expected["w"], rtol=1e-5)
  assert int(out.measurements["rejected_norm"]) == 0


def test_all_rejected_gives_zero_not_nan():
  process = UpdateValidationFactory(norm_bound=1.0).create(VALUE, WEIGHT)
  values = [{"w": np.array([5.0, 5.0], np.float32), "b": np.float32(1.0)}] * 3
  out = process.next(process.initialize(), values, [np.float32(1.0)] * 3)
  np.testing.assert_array_equal(out.result["w"], [0.0, 0.0])
  assert int(out.measurements["rejected_norm"]) == 3


def test_a_byzantine_client_never_touches_the_model():
  # Eight honest clients; one sends a huge update. With a norm bound the
  # round equals the round without that client (FedAvg on the reference
  # backend as the independent oracle).
  model = softmax3_model()
  data = batched_clients([4, 6, 4, 8, 2, 6, 4, 4], seed=1)
  bound = UpdateValidationFactory(norm_bound=5.0)
  honest = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.5))
  guarded = learning.algorithms.build_weighted_fed_avg(
      model, learning.optimizers.build_sgdm(0.5), model_aggregator=bound)
  # The attacker's data make its update huge: its features are scaled by 1e4.
  attacker = [(x * 1e4, y) for x, y in batched_clients([8], seed=2)[0]]
  with fedjit.backend("reference"):
    ref = honest.next(honest.initialize(), data)
  got = guarded.next(guarded.initialize(), data + [attacker])
  for k in ("w", "b"):
    np.testing.assert_allclose(got.state.global_model_weights.trainable[k],
                               ref.state.global_model_weights.trainable[k], atol=1e-5)
  assert got.metrics["aggregator"]["rejected_norm"] == 1
  assert got.metrics["aggregator"]["accepted"] == 8


def test_errors_say_what_to_pass():
  with pytest.raises(TypeError, match="must be a WeightedAggregationFactory.*unweighted"):
    UpdateValidationFactory(learning.aggregators.UnweightedMeanFactory())
  with pytest.raises(TypeError, match="norm_bound to be a number"):
    UpdateValidationFactory(norm_bound="10")
  with pytest.raises(ValueError, match="positive, finite norm_bound"):
    UpdateValidationFactory(norm_bound=-1.0)
  with pytest.raises(ValueError, match="positive, finite norm_bound"):
    UpdateValidationFactory(norm_bound=float("nan"))
  with pytest.raises(TypeError, match="floating"):
    UpdateValidationFactory().create(fedjit.TensorType(np.int32, [2]), WEIGHT)
