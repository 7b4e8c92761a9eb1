"""The robust aggregation factories on both backends against the rules of
`_robust_math` on the same stacked values; TFF's clipping and zeroing
factories (weighted and unweighted inner factories); a FedAvg round with
Byzantine clients; and the factories' errors."""

import collections
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedjit
from fedjit import TensorType
from fedjit.learning import aggregators, algorithms, optimizers
from fedjit.learning.aggregators import _robust_math as rm
from fedjit.learning.aggregators._differential_privacy import _initial_key

BACKENDS = pytest.mark.parametrize("backend", ["vectorized", "reference"])

VALUE = fedjit.to_type(collections.OrderedDict(w=TensorType(np.float32, [2, 3]),
                                               b=TensorType(np.float32, [3])))


def _clients(n, seed=0, outliers=0):
  """n client values of VALUE type, and the same values stacked as [n, 9]."""
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=(n, 9)) + rng.normal(size=9)).astype(np.float32)
  if outliers:
    x[-outliers:] = (rng.normal(size=(outliers, 9)) * 30 + 40).astype(np.float32)
  return x, [_unflatten(row) for row in x]


def _unflatten(v):
  v = np.asarray(v)
  return collections.OrderedDict(w=v[:6].reshape(2, 3), b=v[6:])


def _flat(value):
  return np.concatenate([np.asarray(value["w"]).ravel(), np.asarray(value["b"]).ravel()])


# (name, factory, the rule on the stacked [n, 9] matrix)
_RULES = [
    ("median", lambda: aggregators.CoordinateMedianFactory(), rm.coordinate_median),
    ("median_chunked", lambda: aggregators.CoordinateMedianFactory(chunk=4),
     rm.coordinate_median),
    ("trimmed_mean", lambda: aggregators.TrimmedMeanFactory(num_trimmed=2),
     lambda x: rm.trimmed_mean(x, 2)),
    ("trimmed_fraction", lambda: aggregators.TrimmedMeanFactory(trim_fraction=0.2),
     lambda x: rm.trimmed_mean(x, 2)),        # floor(0.2 * 11) = 2
    ("krum", lambda: aggregators.KrumFactory(2), lambda x: rm.krum(x, 2)[0]),
    ("multi_krum", lambda: aggregators.KrumFactory(2, num_selected=4),
     lambda x: rm.krum(x, 2, 4)[0]),
    ("bulyan", lambda: aggregators.BulyanFactory(2), lambda x: rm.bulyan(x, 2)[0]),
    ("geometric_median", lambda: aggregators.GeometricMedianFactory(),
     rm.geometric_median),
    ("mixing_krum",
     lambda: aggregators.NearestNeighborMixingFactory(2, inner=aggregators.KrumFactory(2)),
     lambda x: rm.krum(rm.nearest_neighbor_mixing(x, 2), 2)[0]),
    ("mixing_median",
     lambda: aggregators.NearestNeighborMixingFactory(
         1, inner=aggregators.CoordinateMedianFactory()),
     lambda x: rm.coordinate_median(rm.nearest_neighbor_mixing(x, 1))),
]


@BACKENDS
@pytest.mark.parametrize("name,make,rule", _RULES, ids=[r[0] for r in _RULES])
def test_factory_is_its_rule_on_the_stacked_values(backend, name, make, rule):
  x, values = _clients(11, seed=len(name), outliers=2)
  with fedjit.backend(backend):
    process = make().create(VALUE)
    assert not process.is_weighted
    out = process.next(process.initialize(), values)
  want = _unflatten(rule(jnp.asarray(x)))
  for key in ("w", "b"):
    assert np.asarray(out.result[key]).dtype == np.float32
    np.testing.assert_allclose(out.result[key], want[key], rtol=1e-5, atol=1e-5,
                               err_msg=name)
  assert int(out.measurements["num_clients"]) == 11
  if name == "krum" or name == "multi_krum":
    m = 1 if name == "krum" else 4
    assert int(out.measurements["num_selected"]) == m
    np.testing.assert_array_equal(out.measurements["selected"], rm.krum(x, 2, m)[1])
  if name == "bulyan":
    assert int(out.measurements["num_selected"]) == 11 - 4
  if name.startswith("trimmed"):
    assert int(out.measurements["num_trimmed"]) == 2
  if name == "geometric_median":
    assert 1 <= int(out.measurements["iterations"]) <= 100


@BACKENDS
def test_a_tensor_value_and_a_median_over_rounds(backend):
  with fedjit.backend(backend):
    process = aggregators.CoordinateMedianFactory().create(TensorType(np.float32, [3]))
    state = process.initialize()
    for r in range(2):
      x = np.arange(15, dtype=np.float32).reshape(5, 3) * (r + 1)
      out = process.next(state, list(x))
      state = out.state
      np.testing.assert_allclose(out.result, np.median(x, axis=0))
    scalar = aggregators.TrimmedMeanFactory(num_trimmed=1).create(TensorType(np.float32))
    out = scalar.next(scalar.initialize(), [1.0, 2.0, 3.0, 100.0])
    np.testing.assert_allclose(out.result, 2.5)


@BACKENDS
def test_centered_clipping_keeps_the_last_aggregate_as_its_center(backend):
  with fedjit.backend(backend):
    process = aggregators.CenteredClippingFactory(radius=1.0, iterations=2).create(VALUE)
    state = process.initialize()
    np.testing.assert_array_equal(state["center"], np.zeros(9, np.float32))
    center = np.zeros(9, np.float32)
    for r in range(2):
      x, values = _clients(7, seed=r, outliers=1)
      out = process.next(state, values)
      want = rm.centered_clipping(x, center, 1.0, 2)
      np.testing.assert_allclose(_flat(out.result), want, rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(out.state["center"], want, rtol=1e-5, atol=1e-5)
      state, center = out.state, np.asarray(want)


@BACKENDS
def test_bucketing_splits_its_key_every_round(backend):
  with fedjit.backend(backend):
    process = aggregators.BucketingFactory(
        3, inner=aggregators.CoordinateMedianFactory(), seed=5).create(VALUE)
    state = process.initialize()
    key = jnp.asarray(_initial_key(5))
    np.testing.assert_array_equal(state["key"], key)
    for r in range(2):
      x, values = _clients(10, seed=r + 3, outliers=2)
      out = process.next(state, values)
      key, use = jax.random.split(key)
      want = rm.coordinate_median(rm.bucketing(x, 3, use))
      np.testing.assert_allclose(_flat(out.result), want, rtol=1e-5, atol=1e-5)
      np.testing.assert_array_equal(out.state["key"], key)
      assert int(out.measurements["num_buckets"]) == 4
      assert int(out.measurements["inner"]["num_clients"]) == 4
      state = out.state


@BACKENDS
def test_bucketing_carries_a_stateful_inner_state(backend):
  with fedjit.backend(backend):
    process = aggregators.BucketingFactory(
        2, inner=aggregators.CenteredClippingFactory(radius=0.5), seed=1).create(VALUE)
    state = process.initialize()
    assert list(state) == ["key", "inner"]
    x, values = _clients(6, seed=8)
    out = process.next(state, values)
    _, use = jax.random.split(jnp.asarray(_initial_key(1)))
    want = rm.centered_clipping(rm.bucketing(x, 2, use), np.zeros(9), 0.5)
    np.testing.assert_allclose(_flat(out.result), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.state["inner"]["center"], want, rtol=1e-5, atol=1e-5)


_SERIALIZED = [
    ("krum", lambda: aggregators.KrumFactory(2, num_selected=3)),
    ("trimmed_fraction", lambda: aggregators.TrimmedMeanFactory(trim_fraction=0.25)),
    ("bulyan", lambda: aggregators.BulyanFactory(1)),
    ("bucketing_clipping", lambda: aggregators.BucketingFactory(
        2, inner=aggregators.CenteredClippingFactory(radius=1.0), seed=3)),
]


@pytest.mark.parametrize("name,make", _SERIALIZED, ids=[c[0] for c in _SERIALIZED])
def test_a_serialized_round_runs_the_rule_for_any_number_of_clients(name, make):
  """Serialization exports the server's jax code with a symbolic number of
  clients; the restored round must compute what the original does (on the
  default backend: the exported program is the same for both)."""
  with fedjit.backend("vectorized"):
    process = make().create(VALUE)
    restored = fedjit.deserialize(fedjit.serialize(process.next))
    assert str(restored.type_signature) == str(process.next.type_signature)
    state = process.initialize()
    for n in (8, 13):
      _, values = _clients(n, seed=n, outliers=1)
      want = process.next(state, values)
      got = restored(state, values)
      for a, b in zip(jax.tree_util.tree_leaves((got.result, got.measurements, got.state)),
                      jax.tree_util.tree_leaves((want.result, want.measurements,
                                                 want.state))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------ clipping and zeroing


@BACKENDS
def test_clipping_factory_with_a_weighted_inner_factory(backend):
  with fedjit.backend(backend):
    factory = aggregators.clipping_factory(2.0, aggregators.MeanFactory())
    assert isinstance(factory, aggregators.WeightedAggregationFactory)
    process = factory.create(VALUE, TensorType(np.float32))
    assert process.is_weighted
    x, values = _clients(5, seed=2, outliers=1)
    weights = [1.0, 2.0, 3.0, 1.0, 5.0]
    state = process.initialize()
    assert list(state) == ["clipping_norm", "inner_agg", "clipped_count_agg"]
    out = process.next(state, values, weights)
  norms = np.linalg.norm(x, axis=1)
  clipped = x / np.maximum(norms / 2.0, 1.0)[:, None]
  want = np.average(clipped, axis=0, weights=weights)
  np.testing.assert_allclose(_flat(out.result), want, rtol=1e-5)
  m = out.measurements
  assert list(m) == ["clipping", "clipping_norm", "clipped_count"]
  assert int(m["clipped_count"]) == int((norms > 2.0).sum()) > 0
  np.testing.assert_allclose(m["clipping_norm"], 2.0)
  assert m["clipping"] == {"mean_value": (), "mean_weight": ()}


@BACKENDS
def test_clipping_factory_with_a_robust_inner_factory(backend):
  with fedjit.backend(backend):
    factory = aggregators.clipping_factory(3.0, aggregators.KrumFactory(1))
    assert isinstance(factory, aggregators.UnweightedAggregationFactory)
    process = factory.create(VALUE)
    x, values = _clients(6, seed=4, outliers=1)
    out = process.next(process.initialize(), values)
  norms = np.linalg.norm(x, axis=1)
  clipped = (x / np.maximum(norms / 3.0, 1.0)[:, None]).astype(np.float32)
  np.testing.assert_allclose(_flat(out.result), rm.krum(clipped, 1)[0], rtol=1e-5)
  assert int(out.measurements["clipping"]["num_clients"]) == 6


@BACKENDS
@pytest.mark.parametrize("order", [1.0, 2.0, math.inf])
def test_zeroing_factory_norm_orders(backend, order):
  x, values = _clients(6, seed=9)
  norms = np.linalg.norm(x, ord=order, axis=1)
  bound = float(np.median(norms))
  with fedjit.backend(backend):
    process = aggregators.zeroing_factory(bound, aggregators.UnweightedMeanFactory(),
                                          norm_order=order).create(VALUE)
    out = process.next(process.initialize(), values)
  kept = np.where((norms > bound)[:, None], 0.0, x)
  np.testing.assert_allclose(_flat(out.result), kept.mean(axis=0), rtol=1e-5, atol=1e-6)
  assert int(out.measurements["zeroed_count"]) == int((norms > bound).sum()) == 3
  assert list(out.state) == ["zeroing_norm", "inner_agg", "zeroed_count_agg"]


@BACKENDS
def test_zeroing_keeps_the_weight_of_a_zeroed_value(backend):
  with fedjit.backend(backend):
    process = aggregators.zeroing_factory(1.0, aggregators.MeanFactory()).create(
        TensorType(np.float32), TensorType(np.float32))
    out = process.next(process.initialize(), [0.5, 10.0], [1.0, 3.0])
  np.testing.assert_allclose(out.result, 0.5 / 4)  # (0.5 * 1 + 0 * 3) / (1 + 3)


# ------------------------------------------------------ FedAvg


FEATURES = 3


def _scaled_loss_model():
  """A linear softmax model whose per-example loss is multiplied by the
  input's last column: with -100 there, a client's update is its honest
  update times -100 (one SGD step), a sign-flipping Byzantine client."""
  w0 = np.random.default_rng(1).normal(0, 0.1, (FEATURES, 2)).astype(np.float32)
  return fedjit.learning.models.from_functions(
      lambda key: {"w": jnp.asarray(w0), "b": jnp.zeros(2, jnp.float32)},
      lambda p, x: jnp.concatenate([x[:, :FEATURES] @ p["w"] + p["b"], x[:, FEATURES:]], 1),
      lambda y, out: out[:, -1] * optax.softmax_cross_entropy_with_integer_labels(
          out[:, :-1], y),
      input_spec=((np.float32, [None, FEATURES + 1]), (np.int32, [None])))


def _byzantine_clients(honest=8, byzantine=2, size=8):
  rng = np.random.default_rng(0)
  true_w = rng.normal(size=FEATURES)
  clients = []
  for i in range(honest + byzantine):
    x = rng.normal(size=(size, FEATURES)).astype(np.float32)
    y = (x @ true_w > 0).astype(np.int32)
    scale = np.full((size, 1), 1.0 if i < honest else -100.0, np.float32)
    clients.append([(np.concatenate([x, scale], 1), y)])
  return clients


def _round(aggregator, clients):
  trainer = algorithms.build_unweighted_fed_avg(
      _scaled_loss_model(), optimizers.build_sgdm(0.5), model_aggregator=aggregator)
  state = trainer.next(trainer.initialize(), clients).state
  p = trainer.get_model_weights(state).trainable
  return np.concatenate([np.asarray(p["w"]).ravel(), np.asarray(p["b"]).ravel()])


@BACKENDS
def test_median_and_krum_resist_sign_flipping_clients_in_fed_avg(backend):
  clients = _byzantine_clients()
  with fedjit.backend(backend):
    honest = _round(aggregators.UnweightedMeanFactory(), clients[:8])
    attacked_mean = _round(aggregators.UnweightedMeanFactory(), clients)
    robust = {
        "median": _round(aggregators.CoordinateMedianFactory(), clients),
        "krum": _round(aggregators.KrumFactory(2), clients),
        "multi_krum": _round(aggregators.KrumFactory(2, num_selected=6), clients),
    }
  mean_error = np.linalg.norm(attacked_mean - honest)
  assert mean_error > 1.0  # the plain mean is dragged away
  for name, weights in robust.items():
    assert np.linalg.norm(weights - honest) < 0.2 * mean_error, name


# ------------------------------------------------------------ errors


@BACKENDS
def test_bulyan_with_too_few_clients_says_what_is_needed(backend):
  _, values = _clients(9)
  with fedjit.backend(backend):
    process = aggregators.BulyanFactory(num_byzantine=2).create(VALUE)
    # The reference backend wraps the error of a jax computation in a
    # ClientComputationError (a RuntimeError) whose cause is the ValueError.
    with pytest.raises((ValueError, fedjit.ClientComputationError),
                       match=r"Bulyan needs n >= 4f \+ 3 clients, got n=9 with f=2: lower f "
                             r"to at most 1") as e:
      process.next(process.initialize(), values)
  assert isinstance(e.value, ValueError) or isinstance(e.value.__cause__, ValueError)


def test_wrappers_need_a_robust_inner_factory():
  for inner in (aggregators.MeanFactory(), aggregators.UnweightedMeanFactory(), None):
    with pytest.raises(TypeError, match="inner must be one of fedjit.aggregators' robust"):
      aggregators.NearestNeighborMixingFactory(1, inner=inner)
    with pytest.raises(TypeError, match="robust factories"):
      aggregators.BucketingFactory(2, inner=inner)
  with pytest.raises(TypeError, match="MeanFactory, a weighted aggregation factory"):
    aggregators.BucketingFactory(2, inner=aggregators.MeanFactory())


def test_weighted_algorithms_refuse_the_robust_factories():
  model = _scaled_loss_model()
  for factory in (aggregators.KrumFactory(1), aggregators.CoordinateMedianFactory()):
    with pytest.raises(TypeError, match="WeightedAggregationFactory"):
      algorithms.build_weighted_fed_avg(model, optimizers.build_sgdm(0.1),
                                        model_aggregator=factory)


def test_value_types_must_be_known_float_tensors():
  for factory in (aggregators.CoordinateMedianFactory(), aggregators.KrumFactory(1),
                  aggregators.clipping_factory(1.0, aggregators.UnweightedMeanFactory())):
    with pytest.raises(TypeError, match="float dtype"):
      factory.create(TensorType(np.int32, [3]))
  with pytest.raises(TypeError, match="every shape known"):
    aggregators.CoordinateMedianFactory().create(TensorType(np.float32, [None]))
  with pytest.raises(TypeError, match="without placement"):
    aggregators.KrumFactory(1).create(fedjit.FederatedType(np.float32, fedjit.CLIENTS))


def test_constructor_arguments_are_checked():
  with pytest.raises(ValueError, match="exactly one of num_trimmed"):
    aggregators.TrimmedMeanFactory()
  with pytest.raises(ValueError, match="exactly one of num_trimmed"):
    aggregators.TrimmedMeanFactory(num_trimmed=1, trim_fraction=0.1)
  with pytest.raises(ValueError, match=r"trim_fraction in \[0, 0.5\)"):
    aggregators.TrimmedMeanFactory(trim_fraction=0.5)
  with pytest.raises(ValueError, match="num_byzantine .* int >= 0"):
    aggregators.KrumFactory(-1)
  with pytest.raises(TypeError, match="num_byzantine"):
    aggregators.BulyanFactory(1.5)
  with pytest.raises(ValueError, match="radius > 0"):
    aggregators.CenteredClippingFactory(radius=0.0)
  with pytest.raises(TypeError, match="noise_seed|seed"):
    aggregators.BucketingFactory(2, aggregators.KrumFactory(1), seed="x")
  with pytest.raises(TypeError, match="fixed clipping norm.*EstimationProcess"):
    aggregators.clipping_factory("adaptive", aggregators.MeanFactory())
  with pytest.raises(TypeError, match="inner_agg_factory to be an aggregation factory"):
    aggregators.zeroing_factory(1.0, object())
  with pytest.raises(ValueError, match="norm_order to be 1.0, 2.0 or math.inf"):
    aggregators.zeroing_factory(1.0, aggregators.MeanFactory(), norm_order=3.0)
  with pytest.raises(ValueError, match="clipping_norm > 0"):
    aggregators.clipping_factory(0.0, aggregators.MeanFactory())


def test_the_factories_are_tffs_aggregators_names():
  for name in ("CoordinateMedianFactory", "TrimmedMeanFactory", "KrumFactory",
               "BulyanFactory", "GeometricMedianFactory", "CenteredClippingFactory",
               "NearestNeighborMixingFactory", "BucketingFactory", "clipping_factory",
               "zeroing_factory"):
    assert getattr(fedjit.aggregators, name) is getattr(aggregators, name)
