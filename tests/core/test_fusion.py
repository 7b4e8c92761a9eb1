"""The vectorized backend fuses client maps with their aggregations."""

import numpy as np
import pytest

import fedjit
from fedjit import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.core.compiler import fuse_map_reduce

V = TensorType(np.float32, [3])


@fedjit.jax_computation(V, np.float32)
def scaled(v, s):
  return {"value": v * s, "weight": s, "count": np.int32(1)}


@fedjit.federated_computation(FederatedType(V, CLIENTS), FederatedType(np.float32, CLIENTS))
def mean_and_count(values, scales):
  out = fedjit.federated_map(scaled, (values, scales))
  return (fedjit.federated_mean(out["value"], out["weight"]),
          fedjit.federated_sum(out["count"]), fedjit.federated_mean(out["value"]))


@fedjit.federated_computation(FederatedType(V, CLIENTS), FederatedType(np.float32, CLIENTS))
def returns_client_values(values, scales):
  out = fedjit.federated_map(scaled, (values, scales))
  return fedjit.federated_sum(out["count"]), out["value"]


def _ops(graph):
  return [n.attrs.get("name", n.op) for n in graph.nodes]


def test_map_with_aggregations_becomes_one_node():
  fused = fuse_map_reduce(mean_and_count.graph)
  ops = _ops(fused)
  assert "fused_map_reduce" in ops and "federated_map" not in ops
  assert "federated_mean" not in ops and "federated_sum" not in ops
  # A map whose client values are returned stays as it is.
  assert "fused_map_reduce" not in _ops(fuse_map_reduce(returns_client_values.graph))


def test_fed_avg_round_is_fused():
  import jax.numpy as jnp
  import optax
  from fedjit import learning
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((3, 2))}, lambda p, x: x @ p["w"],
      lambda y, l: optax.softmax_cross_entropy_with_integer_labels(l, y),
      input_spec=((np.float32, [None, 3]), (np.int32, [None])))
  trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.1))
  ops = _ops(fuse_map_reduce(trainer.next.graph))
  # The client update's results are only aggregated: no per-client copy remains.
  assert ops.count("fused_map_reduce") == 1
  assert "federated_mean" not in ops and "federated_sum" not in ops


@pytest.mark.parametrize("options", [dict(client_map="map"), dict(client_map="map", chunk_size=2),
                                     dict(client_map="map", chunk_size=4),
                                     dict(client_map="vmap")])
def test_fused_results_equal_reference(options):
  rng = np.random.default_rng(0)
  values = rng.normal(size=(7, 3)).astype(np.float32)
  scales = rng.random(7).astype(np.float32) + 0.1
  weighted = (scales[:, None] ** 2 * values).sum(0) / scales.sum()
  with fedjit.backend("reference"):
    ref = mean_and_count(values, scales)
  with fedjit.backend("vectorized", **options):
    got = mean_and_count(values, scales)
  np.testing.assert_allclose(ref[0], weighted, rtol=1e-5)
  np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
  assert got[1] == ref[1] == 7
  np.testing.assert_allclose(got[2], (scales[:, None] * values).mean(0), rtol=1e-5)
