"""EstimationProcess and PrivateQuantileEstimationProcess (TFF's semantics),
checked against a NumPy reference."""

import math

import numpy as np
import pytest

import fedjit
from fedjit.aggregators import PrivateQuantileEstimationProcess

F32_SERVER = fedjit.FederatedType(np.float32, fedjit.SERVER)


def _reference(values_per_round, e0, target, lr, multiplier=1.0, increment=0.0):
  """The reported estimate after each round, by hand (float64)."""
  estimate, reports = e0, []
  for values in values_per_round:
    below = np.mean(np.asarray(values) <= estimate)
    estimate = estimate * math.exp(-lr * (below - target))
    reports.append(multiplier * estimate + increment)
  return reports


@pytest.mark.parametrize("secure", [False, True])
def test_the_estimate_follows_the_geometric_update(backend, secure):
  rng = np.random.default_rng(0)
  rounds = [rng.uniform(0.0, 4.0, 7).astype(np.float32) for _ in range(4)]
  process = PrivateQuantileEstimationProcess.no_noise(
      1.0, 0.7, 0.5, multiplier=2.0, increment=0.5, secure_estimation=secure)
  state = process.initialize()
  assert float(process.report(state)) == pytest.approx(2.0 * 1.0 + 0.5)
  got = []
  for values in rounds:
    state = process.next(state, list(values))
    got.append(float(process.report(state)))
  np.testing.assert_allclose(got, _reference(rounds, 1.0, 0.7, 0.5, 2.0, 0.5), rtol=1e-5)


def test_types_are_tffs():
  process = PrivateQuantileEstimationProcess.no_noise(1.0, 0.5, 0.2)
  assert isinstance(process, fedjit.templates.EstimationProcess)
  assert process.state_type == F32_SERVER
  assert process.report.type_signature.result == F32_SERVER
  assert process.next.type_signature.parameter[1] == fedjit.FederatedType(
      np.float32, fedjit.CLIENTS)


def test_secure_estimation_uses_only_secure_sums():
  plain = fedjit.privacy_report(PrivateQuantileEstimationProcess.no_noise(1.0, 0.5, 0.2).next)
  assert [f.intrinsic for f in plain.flows] == ["federated_mean"]
  secure = fedjit.privacy_report(PrivateQuantileEstimationProcess.no_noise(
      1.0, 0.5, 0.2, secure_estimation=True).next)
  assert secure.flows and all(f.secure and f.reveals == "aggregate" for f in secure.flows)
  secure.check()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(initial_estimate=0.0), ValueError, "initial_estimate > 0"),
    (dict(target_quantile=1.5), ValueError, r"target_quantile between 0 and 1"),
    (dict(target_quantile=-0.1), ValueError, r"target_quantile between 0 and 1"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate > 0"),
    (dict(multiplier=0.0), ValueError, "multiplier > 0"),
    (dict(increment=-1.0), ValueError, "increment >= 0"),
    (dict(learning_rate="fast"), TypeError, "learning_rate to be a number"),
    (dict(secure_estimation=1), TypeError, "secure_estimation to be True or False"),
])
def test_bad_arguments_say_what_was_expected(kwargs, error, match):
  args = dict(initial_estimate=1.0, target_quantile=0.5, learning_rate=0.2) | kwargs
  with pytest.raises(error, match=match):
    PrivateQuantileEstimationProcess.no_noise(**args)


def _constant(value):
  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_value(np.float32(value), fedjit.SERVER)

  @fedjit.federated_computation(F32_SERVER)
  def next_fn(state):
    return state

  return initialize_fn, next_fn


def test_estimation_process_template_and_map():
  initialize_fn, next_fn = _constant(3.0)
  process = fedjit.templates.EstimationProcess(initialize_fn, next_fn, next_fn)
  assert float(process.report(process.initialize())) == 3.0

  @fedjit.jax_computation(np.float32)
  def twice(x):
    return 2 * x

  double = fedjit.federated_computation(lambda x: fedjit.federated_map(twice, x), F32_SERVER)
  mapped = process.map(double)
  assert isinstance(mapped, fedjit.templates.EstimationProcess)
  assert float(mapped.report(mapped.initialize())) == 6.0

  takes_int = fedjit.federated_computation(
      lambda x: x, fedjit.FederatedType(np.int32, fedjit.SERVER))
  with pytest.raises(fedjit.templates.EstimateNotAssignableError, match="estimate"):
    process.map(takes_int)
  with pytest.raises(fedjit.templates.TemplateStateNotAssignableError, match="report_fn"):
    fedjit.templates.EstimationProcess(initialize_fn, next_fn, takes_int)
  with pytest.raises(TypeError, match="report_fn to be a fedjit.Computation"):
    fedjit.templates.EstimationProcess(initialize_fn, next_fn, lambda s: s)
