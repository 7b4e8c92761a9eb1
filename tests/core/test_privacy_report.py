"""privacy_report: every flow of client values to the server, read from the graph."""

import numpy as np
import pytest

from conftest import softmax3_model

import fedjit
from fedjit import learning

F32 = fedjit.TensorType(np.float32, [2])
I32 = fedjit.TensorType(np.int32)


def test_fed_avg_reveals_only_aggregates():
  trainer = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.1))
  report = fedjit.privacy_report(trainer)
  assert [f.intrinsic for f in report.flows] == ["federated_sum", "federated_mean"]
  assert all(f.reveals == "aggregate" and not f.secure for f in report.flows)
  assert not report.reveals_individual_values
  update = report.flows[1]  # the model update, at CLIENTS, averaged at the SERVER
  assert str(update.client_type).startswith("{<trainable=")
  assert update.server_type.placement == fedjit.SERVER
  assert "2 flow(s) from CLIENTS to SERVER" in str(report)


def test_each_kind_of_flow_is_named():
  @fedjit.federated_computation(fedjit.FederatedType(F32, fedjit.CLIENTS),
                                fedjit.FederatedType(I32, fedjit.CLIENTS))
  def everything(x, k):
    return (fedjit.federated_mean(x), fedjit.federated_collect(x), fedjit.federated_max(x),
            fedjit.federated_secure_sum(k, 100), fedjit.federated_broadcast(
                fedjit.federated_sum(k)))
  report = fedjit.privacy_report(everything)
  kinds = [(f.intrinsic, f.reveals, f.secure) for f in report.flows]
  assert kinds == [
      ("federated_mean", "aggregate", False),
      ("federated_collect", "individual values", False),
      ("federated_max", "order statistic (a client's value, per coordinate)", False),
      ("federated_secure_sum", "aggregate", True),
      ("federated_sum", "aggregate", False)]
  assert report.reveals_individual_values
  collect = report.flows[1]
  assert str(collect.server_type) == "float32[?,2]@SERVER"
  assert str(collect.client_type) == "{float32[2]}@CLIENTS"


def test_server_only_and_broadcast_flows_are_not_client_flows():
  @fedjit.federated_computation(fedjit.FederatedType(F32, fedjit.SERVER))
  def broadcast_only(s):
    return fedjit.federated_broadcast(s)
  assert fedjit.privacy_report(broadcast_only).flows == []


def test_errors_say_what_to_pass():
  @fedjit.jax_computation(F32)
  def local(x):
    return x
  with pytest.raises(TypeError, match="federated computation's graph.*JaxComputation"):
    fedjit.privacy_report(local)
  with pytest.raises(TypeError, match="got int"):
    fedjit.privacy_report(3)


def test_secure_sums_beside_individual_values_are_refused():
  @fedjit.federated_computation(fedjit.FederatedType(I32, fedjit.CLIENTS))
  def contradictory(k):
    return fedjit.federated_secure_sum(k, 100), fedjit.federated_collect(k)
  with pytest.raises(ValueError, match="secure aggregation.*federated_collect.*contradict"):
    fedjit.privacy_report(contradictory).check()

  @fedjit.federated_computation(fedjit.FederatedType(I32, fedjit.CLIENTS))
  def fine(k):
    return fedjit.federated_secure_sum(k, 100), fedjit.federated_sum(k)
  assert fedjit.privacy_report(fine).check().flows


def test_a_contradictory_aggregator_fails_when_the_process_is_built():
  from fedjit.learning.aggregators import UnweightedAggregationFactory
  from fedjit.learning.templates import AggregationProcess, MeasuredProcessOutput

  class SecureButCollecting(UnweightedAggregationFactory):
    """Securely sums a count, yet collects every update (a contradiction)."""

    def create(self, value_type):
      @fedjit.jax_computation(fedjit.core.collected_type(fedjit.to_type(value_type)))
      def first(stacked):
        import jax
        return jax.tree_util.tree_map(lambda x: x[0], stacked)

      @fedjit.jax_computation
      def one():
        import jax.numpy as jnp
        return jnp.int32(1)

      @fedjit.federated_computation
      def init():
        return fedjit.federated_value((), fedjit.SERVER)

      @fedjit.federated_computation(init.type_signature.result,
                                    fedjit.FederatedType(value_type, fedjit.CLIENTS))
      def next_fn(state, value):
        count = fedjit.federated_secure_sum(fedjit.federated_eval(one, fedjit.CLIENTS), 1)
        chosen = fedjit.federated_map(first, fedjit.federated_collect(value))
        return MeasuredProcessOutput(state, chosen, count)
      return AggregationProcess(init, next_fn)

  with pytest.raises(ValueError, match="contradict"):
    learning.algorithms.build_unweighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.1),
        model_aggregator=SecureButCollecting())


# ------------------------------------------------------- differential privacy


def _fed_avg(aggregator):
  return learning.algorithms.build_unweighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.1), model_aggregator=aggregator)


def test_central_dp_noise_is_shown_on_the_model_update_only():
  from fedjit import aggregators
  accountant = aggregators.PrivacyAccountant(population_size=1000, delta=1e-5)
  factory = aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
      noise_multiplier=1.2, clients_per_round=10, clip=0.5, accountant=accountant)
  report = fedjit.privacy_report(_fed_avg(factory))
  metrics, update = report.flows
  assert metrics.noise == ()   # the training loss is summed without noise
  (step,) = update.noise
  assert step.placement == fedjit.SERVER and step.where == "at the server"
  assert (step.noise.mechanism, step.noise.noise_multiplier, step.noise.clip) == (
      "gaussian", 1.2, 0.5)
  assert step.noise.source == "DifferentiallyPrivateFactory.gaussian_fixed"
  text = str(report)
  assert "DP: gaussian noise, noise multiplier 1.2, clip 0.5" in text
  assert "added at the server" in text
  # ε for a planned run, from the accountant bound to the factory (checked
  # against dp-accounting itself in tests/learning/test_privacy_accounting.py).
  assert report.epsilon(100) == {
      "DifferentiallyPrivateFactory.gaussian_fixed": factory.accountant.epsilon(100)}


def test_dp_aggregator_shows_which_flows_the_noise_covers():
  report = fedjit.privacy_report(_fed_avg(learning.dp_aggregator(1.0, 100)))
  noised = [f for f in report.flows if f.noise]
  (update,) = noised   # the zeroing estimate and the zeroed count carry no noise (as in TFF)
  assert update.noise[0].noise.clip is None       # adaptive clipping
  assert "adaptive clip" in str(report)
  assert len(report.flows) > 2


def test_local_dp_noise_is_added_on_each_client_before_the_mean():
  from fedjit import aggregators
  report = fedjit.privacy_report(
      _fed_avg(aggregators.DifferentiallyPrivateFactory.local_gaussian(1.0, clip=0.5)))
  by_kind = {(f.intrinsic, bool(f.noise)) for f in report.flows}
  # the mean of the noised updates is protected; the clipped count, which the
  # same client computation returns beside them, is not.
  assert ("federated_mean", True) in by_kind and ("federated_sum", False) in by_kind
  (mean,) = [f for f in report.flows if f.noise]
  assert mean.noise[0].where == "on each client"


def test_central_noise_after_individual_values_fails_at_build_time():
  from fedjit import aggregators
  factory = aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
      1.0, 10, 0.5, record_aggregation_factory=aggregators.CoordinateMedianFactory())
  with pytest.raises(ValueError, match="adds DP noise at the server.*after federated_collect.*"
                                       "protects nothing.*local_gaussian"):
    _fed_avg(factory)


def test_noise_after_a_hand_written_collect_is_refused():
  @fedjit.jax_computation(fedjit.core.collected_type(F32))
  def noisy_first(stacked):
    return stacked[0]
  fedjit.core.mark_dp_noise(noisy_first, fedjit.core.DPNoise("gaussian", 1.0, 1.0))

  @fedjit.federated_computation(fedjit.FederatedType(F32, fedjit.CLIENTS))
  def leaky(x):
    return fedjit.federated_map(noisy_first, fedjit.federated_collect(x))
  report = fedjit.privacy_report(leaky)
  assert report.flows[0].noise and report.flows[0].individual
  with pytest.raises(ValueError, match="protects nothing"):
    report.check()


def test_mark_dp_noise_checks_its_arguments():
  @fedjit.jax_computation(F32)
  def f(x):
    return x
  with pytest.raises(TypeError, match="expects a fedjit.core.DPNoise, got 1.0"):
    fedjit.core.mark_dp_noise(f, 1.0)
  with pytest.raises(TypeError, match="marks a fedjit.jax_computation, got function"):
    fedjit.core.mark_dp_noise(lambda x: x, fedjit.core.DPNoise("gaussian", 1.0))
  assert fedjit.core.mark_dp_noise(f, fedjit.core.DPNoise("gaussian", 1.0)) is f
