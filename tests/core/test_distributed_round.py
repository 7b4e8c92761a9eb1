"""DistributedRound: a round split into server and client parts (deployment)
computes what the simulation computes on the same clients."""

import jax
import numpy as np
import pytest

from conftest import batched_clients, softmax3_model

import fedjit
from fedjit import aggregators, learning


def _run_split(process, state, data, serialized=True):
  plan = fedjit.core.DistributedRound(process)
  task = plan.prepare([state])
  program = (fedjit.deserialize(plan.serialized_client_program()) if serialized
             else plan.client_program)
  reports = [plan.run_client(program, [d], task.broadcasts) for d in data]
  return plan, plan.finish(task, reports)


def _same(process, a, b, rtol=1e-5, atol=1e-6):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol),
                         process.get_model_weights(a.state).trainable,
                         process.get_model_weights(b.state).trainable)


@pytest.mark.parametrize("name, build", [
    ("fed_avg", lambda: learning.algorithms.build_weighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.5))),
    ("dp_fixed", lambda: learning.algorithms.build_unweighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.5),
        model_aggregator=aggregators.DifferentiallyPrivateFactory.gaussian_fixed(
            1.0, clients_per_round=3, clip=0.1, noise_seed=3))),
    ("local_dp", lambda: learning.algorithms.build_unweighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.5),
        model_aggregator=aggregators.DifferentiallyPrivateFactory.local_gaussian(
            0.5, clip=0.5, noise_seed=4))),
    ("median", lambda: learning.algorithms.build_unweighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.5),
        model_aggregator=aggregators.CoordinateMedianFactory())),
    ("secure_sum", lambda: learning.algorithms.build_unweighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.5),
        model_aggregator=aggregators.UnweightedMeanFactory(
            value_sum_factory=aggregators.SecureSumFactory(1.0, -1.0)))),
])
def test_the_split_round_equals_the_simulated_round(name, build):
  process = build()
  data = batched_clients([4, 6, 2, 8])
  state = process.initialize()
  with fedjit.backend("reference"):
    expected = process.next(state, data)
  plan, got = _run_split(process, state, data)
  _same(process, got, expected)
  assert len(plan.client_program_hash()) == 64
  if name not in ("fed_avg", "dp_fixed"):
    # (the state carries over the same way for every aggregator; local noise
    # is keyed by a hash of each client's update bits, and the split round's
    # float arithmetic matches the reference backend's to 1e-8, not bit for
    # bit, so its second round would draw other noise)
    return
  # and a second round from the split round's state
  with fedjit.backend("reference"):
    expected2 = process.next(expected.state, data[:3])
  _, got2 = _run_split(process, got.state, data[:3], serialized=False)
  _same(process, got2, expected2)


def test_the_client_program_takes_only_the_data_and_the_broadcasts():
  process = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  plan = fedjit.core.DistributedRound(process)
  params = plan.client_program.type_signature.parameter
  kinds = [(t.placement, t.all_equal) for t in params.types()]
  assert kinds[0] == (fedjit.CLIENTS, False)                  # the client's data
  assert all(k == (fedjit.CLIENTS, True) for k in kinds[1:])  # broadcast values
  aggregated = [plan.split.graph.nodes[j].attrs["name"] for j in plan.split.aggregations]
  assert aggregated == ["federated_sum", "federated_mean"]


def test_two_round_trips_are_refused_with_a_clear_error():
  from fedjit.simulation import attacks
  # ALIE sees the honest clients' mean, then sends it back: two client stages.
  process = learning.algorithms.build_unweighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5),
      model_aggregator=attacks.ByzantineFactory(aggregators.UnweightedMeanFactory(), "alie",
                                                fraction=0.2))
  with pytest.raises(ValueError, match="cannot be deployed as one round trip.*"
                                       "split the computation into two rounds"):
    fedjit.core.DistributedRound(process)

  @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  def identity(x):
    return x
  with pytest.raises(ValueError, match="returns client-placed values"):
    fedjit.core.DistributedRound(identity)
  with pytest.raises(TypeError, match="splits a federated computation"):
    fedjit.core.DistributedRound(3)


def test_prepare_and_finish_check_their_arguments():
  process = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  plan = fedjit.core.DistributedRound(process)
  with pytest.raises(TypeError, match="takes 1 argument"):
    plan.prepare([])
  task = plan.prepare([process.initialize()])
  with pytest.raises(ValueError, match="at least one client's report"):
    plan.finish(task, [])


def _plan_here():
  return fedjit.core.DistributedRound(learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5)))


def _plan_from_another_line():

  plan = _plan_here()
  return plan


def test_the_client_program_hash_does_not_depend_on_where_it_was_traced():
  # The hash names the program in approvals, so it must not change with the
  # line numbers of the code that built it (source locations are stripped).
  assert _plan_here().client_program_hash() == _plan_from_another_line().client_program_hash()
  other = fedjit.core.DistributedRound(learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.25)))
  assert other.client_program_hash() != _plan_here().client_program_hash()


def test_the_server_keeps_running_sums_not_reports():
  process = learning.algorithms.build_unweighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5),
      model_aggregator=aggregators.UnweightedMeanFactory(
          value_sum_factory=aggregators.SecureSumFactory(1.0, -1.0)))
  plan = fedjit.core.DistributedRound(process)
  state = process.initialize()
  task = plan.prepare([state])
  data = batched_clients([4, 6, 2, 8, 4, 6])
  reports = [plan.run_client(plan.client_program, [d], task.broadcasts) for d in data]
  running = plan.aggregate(task)
  for r in reports:
    running.add(r)
  # one running value per aggregation, whatever the number of clients
  sizes = {j: len(jax.tree_util.tree_leaves(v)) for j, v in running._state.items()}
  running_one = plan.aggregate(task)
  running_one.add(reports[0])
  assert sizes == {j: len(jax.tree_util.tree_leaves(v)) for j, v in running_one._state.items()}
  with fedjit.backend("reference"):
    expected = process.next(state, data)
  _same(process, plan.finish(task, running), expected)
  # A secure-sum value outside its bound is refused when it arrives.
  g = plan.split.graph
  (j,) = [j for j in plan.split.aggregations
          if g.nodes[j].attrs["name"] == "federated_secure_sum_bitwidth"][:1]
  k = plan.split.client_outputs.index(plan.split.alias[g.nodes[j].args[0]])
  bad = list(reports[0])
  bad[k] = jax.tree_util.tree_map(lambda x: np.full_like(np.asarray(x), 2 ** 30), bad[k])
  with pytest.raises(ValueError, match="federated_secure_sum_bitwidth"):
    plan.aggregate(task).add(bad)
  with pytest.raises(ValueError, match=f"holds {len(reports[0])} values, got 1"):
    plan.aggregate(task).add(reports[0][:1])
