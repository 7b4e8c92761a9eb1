"""The aggregator interface (factories whose `create` gives a stateful
`AggregationProcess`), custom distributors, and `compose_learning_process`,
against the NumPy FedAvg of test_algorithms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning import aggregators, optimizers, templates
from fedjit.learning import algorithms

from test_algorithms import _clients, _model, _weights, numpy_fed_avg

ROUND = TensorType(np.int32)


@pytest.fixture(params=["reference", "vectorized"])
def backend(request):
  with fedjit.backend(request.param):
    yield request.param


class ScaledMeanFactory(aggregators.WeightedAggregationFactory):
  """A stateful wrapper, as DP and clipping factories are: multiplies every
  client value by `scale`, hands it to an inner weighted factory, and counts
  the rounds it has aggregated. Measurements: `{'rounds': k, 'inner': ...}`."""

  def __init__(self, scale, inner=None):
    self.scale = scale
    self.inner = inner or aggregators.MeanFactory()

  def create(self, value_type, weight_type=TensorType(np.float32)):
    inner = self.inner.create(value_type, weight_type)
    scale = self.scale

    @fedjit.jax_computation(value_type)
    def scale_value(value):
      return jax.tree_util.tree_map(lambda v: v * scale, value)

    @fedjit.jax_computation(ROUND)
    def increment(k):
      return k + 1

    @fedjit.jax_computation
    def zero():
      return jnp.int32(0)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip((fedjit.federated_value(zero(), SERVER), inner.initialize()))

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS),
                                  FederatedType(weight_type, CLIENTS))
    def next_fn(state, value, weight):
      out = inner.next(state[1], fedjit.federated_map(scale_value, value), weight)
      rounds = fedjit.federated_map(increment, state[0])
      return templates.MeasuredProcessOutput(
          state=fedjit.federated_zip((rounds, out.state)), result=out.result,
          measurements=fedjit.federated_zip(dict(rounds=rounds, inner=out.measurements)))

    return templates.AggregationProcess(initialize_fn, next_fn)


def _initial():
  model = _model()
  return model, model.initial_weights.trainable["w"], model.initial_weights.trainable["b"]


def test_custom_stateful_aggregator_in_fed_avg(backend):
  model, w0, b0 = _initial()
  clients = _clients()
  trainer = algorithms.build_weighted_fed_avg(
      model, optimizers.build_sgdm(0.1), server_optimizer_fn=optimizers.build_sgdm(0.8),
      model_aggregator=ScaledMeanFactory(0.5))
  state = trainer.initialize()
  for k in range(1, 4):
    result = trainer.next(state, clients)
    state = result.state
    assert result.metrics["aggregator"] == {
        "rounds": k, "inner": {"mean_value": (), "mean_weight": ()}}
  # Halving the mean update is the server learning rate 0.8 * 0.5.
  w, b, _ = numpy_fed_avg(w0, b0, clients, 3, 0.1, server_lr=0.4)
  np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)
  np.testing.assert_allclose(_weights(trainer, state)[1], b, atol=1e-5)
  assert state.aggregator[0] == 3  # the aggregator's own state


def test_nested_aggregators_keep_state_and_measurements_apart(backend):
  model, w0, b0 = _initial()
  clients = _clients()
  trainer = algorithms.build_weighted_fed_avg(
      model, optimizers.build_sgdm(0.1),
      model_aggregator=ScaledMeanFactory(4.0, inner=ScaledMeanFactory(0.25)))
  state = trainer.initialize()
  for _ in range(2):
    result = trainer.next(state, clients)
    state = result.state
  assert result.metrics["aggregator"] == {
      "rounds": 2, "inner": {"rounds": 2, "inner": {"mean_value": (), "mean_weight": ()}}}
  w, b, _ = numpy_fed_avg(w0, b0, clients, 2, 0.1)  # 4 * 0.25 = 1: plain FedAvg
  np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)


def test_sum_factory_in_unweighted_fed_avg(backend):
  model, w0, b0 = _initial()
  clients = _clients()
  trainer = algorithms.build_unweighted_fed_avg(
      model, optimizers.build_sgdm(0.1), model_aggregator=aggregators.SumFactory())
  state = trainer.next(trainer.initialize(), clients).state
  # The sum of three client deltas is three times their mean.
  w, b, _ = numpy_fed_avg(w0, b0, clients, 1, 0.1, uniform=True, server_lr=3.0)
  np.testing.assert_allclose(_weights(trainer, state)[0], w, atol=1e-5)
  np.testing.assert_allclose(_weights(trainer, state)[1], b, atol=1e-5)


def test_sum_factory_process_sums_client_values(backend):
  process = aggregators.SumFactory().create(TensorType(np.float32, [2]))
  assert not process.is_weighted
  values = [np.array([1.0, 2.0], np.float32), np.array([0.5, -4.0], np.float32),
            np.array([3.0, 0.25], np.float32)]
  out = process.next(process.initialize(), values)
  np.testing.assert_allclose(out.result, [4.5, -1.75])


@pytest.mark.parametrize("build", [algorithms.build_weighted_fed_avg,
                                   lambda m, o, **kw: algorithms.build_fed_prox(m, 0.1, o, **kw)])
def test_weighted_algorithms_reject_an_unweighted_aggregator(build):
  with pytest.raises(TypeError) as info:
    build(_model(), optimizers.build_sgdm(0.1),
          model_aggregator=aggregators.UnweightedMeanFactory())
  message = str(info.value)
  assert "UnweightedMeanFactory" in message  # what was given
  assert "WeightedAggregationFactory" in message  # what was expected
  assert "MeanFactory()" in message and "build_unweighted_fed_avg" in message  # what to do
  with pytest.raises(TypeError, match="WeightedAggregationFactory"):
    algorithms.build_fed_sgd(_model(), model_aggregator=aggregators.SumFactory())


def _counting_broadcast(weights_type):
  """A distributor that broadcasts and reports how often it has."""

  @fedjit.jax_computation
  def zero():
    return jnp.int32(0)

  @fedjit.jax_computation(ROUND)
  def increment(k):
    return k + 1

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_value(zero(), SERVER)

  @fedjit.federated_computation(FederatedType(ROUND, SERVER),
                                FederatedType(weights_type, SERVER))
  def next_fn(state, weights):
    count = fedjit.federated_map(increment, state)
    return templates.MeasuredProcessOutput(
        state=count, result=fedjit.federated_broadcast(weights),
        measurements=fedjit.federated_zip(dict(broadcasts=count)))

  return templates.DistributionProcess(initialize_fn, next_fn)


def _stages(model, server_lr=0.7):
  weights_type = model.weights_type
  initial = model.initial_weights

  @fedjit.jax_computation
  def initial_weights():
    return jax.tree_util.tree_map(jnp.asarray, initial)

  client_work = templates.build_model_delta_client_work(model, optimizers.build_sgdm(0.1))
  update_type = client_work.result_type.member["update"]
  return dict(
      initial_model_weights_fn=initial_weights,
      model_weights_distributor=_counting_broadcast(weights_type),
      client_work=client_work,
      model_update_aggregator=aggregators.MeanFactory().create(update_type),
      model_finalizer=templates.build_apply_optimizer_finalizer(
          optimizers.build_sgdm(server_lr), weights_type))


def test_compose_learning_process_equals_numpy_fed_avg(backend):
  model, w0, b0 = _initial()
  clients = _clients()
  process = templates.compose_learning_process(**_stages(model))
  state = process.initialize()
  for k in range(1, 3):
    result = process.next(state, clients)
    state = result.state
    assert result.metrics["distributor"] == {"broadcasts": k}
  w, b, history = numpy_fed_avg(w0, b0, clients, 2, 0.1, server_lr=0.7)
  np.testing.assert_allclose(_weights(process, state)[0], w, atol=1e-5)
  np.testing.assert_allclose(_weights(process, state)[1], b, atol=1e-5)
  np.testing.assert_allclose(result.metrics["client_work"]["train"]["loss"],
                             history[-1][1], atol=1e-5)


def test_custom_distributor_in_fed_avg():
  model = _model()
  trainer = algorithms.build_weighted_fed_avg(
      model, optimizers.build_sgdm(0.1),
      model_distributor=_counting_broadcast(model.weights_type))
  state = trainer.initialize()
  for k in range(1, 3):
    result = trainer.next(state, _clients())
    state = result.state
  assert result.metrics["distributor"] == {"broadcasts": 2}


def test_compose_checks_the_stages_when_built():
  model = _model()
  stages = _stages(model)
  with pytest.raises(TypeError, match="model_update_aggregator to be a AggregationProcess"):
    templates.compose_learning_process(**{**stages, "model_update_aggregator":
                                          aggregators.MeanFactory()})
  # An aggregator made for another value type fails while composing, not in a round.
  wrong = aggregators.MeanFactory().create(TensorType(np.float32, [3]))
  with pytest.raises(TypeError, match=r"float32\[3\]"):
    templates.compose_learning_process(**{**stages, "model_update_aggregator": wrong})
