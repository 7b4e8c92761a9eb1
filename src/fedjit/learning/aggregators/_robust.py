"""Byzantine-robust aggregation factories, and TFF's clipping and zeroing
wrappers (`tff.aggregators.clipping_factory` / `zeroing_factory`).

The robust factories (`CoordinateMedianFactory`, `TrimmedMeanFactory`,
`KrumFactory`, `BulyanFactory`, `GeometricMedianFactory`,
`CenteredClippingFactory`, and the pre-aggregation wrappers
`NearestNeighborMixingFactory` and `BucketingFactory`) collect every
client's value at the server with `fedjit.federated_collect`, flatten each
value into one row (the flattened tensors of a structure concatenated, in
a float dtype of at least 32 bits), run the rule of
`fedjit.learning.aggregators._robust_math` on the `[n, d]` matrix, and
unflatten the `[d]` result into the value's structure and dtypes. The
whole round stays one compiled program on every backend.

**They are unweighted** (`UnweightedAggregationFactory`): every client
counts once. A client's weight is what it reports about itself (its number
of examples), so a Byzantine client would inflate it to buy influence; a
robust rule must not let it. Use them with
`fedjit.learning.algorithms.build_unweighted_fed_avg(model, opt,
model_aggregator=KrumFactory(num_byzantine=2))`; a weighted algorithm
refuses them with a TypeError.

`clipping_factory` and `zeroing_factory` need no collection: they clip (or
zero) each client's value at the client, then hand the values to any inner
factory, weighted or unweighted, and take its weightedness, as in TFF. The
norm is a float or an `EstimationProcess` (adaptive clipping and zeroing,
e.g. `PrivateQuantileEstimationProcess.no_noise`).
They combine with the robust ones, e.g.
`clipping_factory(1.0, CoordinateMedianFactory())`.

Memory: the server holds n x d values (1,000 clients of 1M float32
parameters are 4 GB); the per-coordinate rules take `chunk` to sort a
block of columns at a time.
"""

from __future__ import annotations

import collections
import fractions
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning.aggregators import _robust_math as rm
from fedjit.learning.aggregators._noise import _initial_key, _number
from fedjit.learning.aggregators._quantile import _check_norm_process
from fedjit.learning.aggregators._mean import (UnweightedAggregationFactory,
                                               WeightedAggregationFactory,
                                               _check_factory, _check_value_type,
                                               _empty, _tensor_leaves)
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput
from fedjit.templates import EstimationProcess

__all__ = ["CoordinateMedianFactory", "TrimmedMeanFactory", "KrumFactory", "BulyanFactory",
           "GeometricMedianFactory", "CenteredClippingFactory",
           "NearestNeighborMixingFactory", "BucketingFactory", "clipping_factory",
           "zeroing_factory"]

FLOAT = TensorType(np.float32)
COUNT = TensorType(np.int32)


def _num_clients(x) -> jax.Array:
  return rm._value(x.shape[0])


def _flatten(stacked: Any, dtype: Any):
  """The collected value (every leaf `[n, ...]`) as an `[n, d]` matrix, and
  the function that turns a `[d]` vector back into one client's value."""
  leaves, treedef = jax.tree_util.tree_flatten(stacked)
  n = leaves[0].shape[0]
  sizes = [math.prod(leaf.shape[1:]) for leaf in leaves]
  x = jnp.concatenate([leaf.reshape((n, size)).astype(dtype)
                       for leaf, size in zip(leaves, sizes)], axis=1)

  def unflatten(vector):
    out, at = [], 0
    for leaf, size in zip(leaves, sizes):
      out.append(vector[at:at + size].reshape(leaf.shape[1:]).astype(leaf.dtype))
      at += size
    return jax.tree_util.tree_unflatten(treedef, out)

  return x, unflatten


def _has_state(state: Any) -> bool:
  return bool(jax.tree_util.tree_leaves(state))


class _RobustFactory(UnweightedAggregationFactory):
  """A rule on the collected `[n, d]` matrix. Subclasses give
  `_aggregate(x, state) -> ([d] result, new state, measurements)` and, when
  stateful, `_initial_state(d, dtype)` (an OrderedDict of arrays)."""

  def _initial_state(self, d: int, dtype: Any) -> collections.OrderedDict:
    del d, dtype
    return collections.OrderedDict()

  def _aggregate(self, x: jax.Array, state: Any):
    raise NotImplementedError

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` applying the rule to `value_type` client values.

    Raises:
      TypeError: if the type is placed, a function or a sequence, not
        floating point, or has a tensor of unknown (`?`) shape.

    Example:
      >>> process = CoordinateMedianFactory().create(fedjit.TensorType(np.float32, [3]))
    """
    name = type(self).__name__
    value_type = _check_value_type(name, value_type)
    leaves = _tensor_leaves(value_type)
    if not leaves or any(dim is None for leaf in leaves for dim in leaf.shape):
      raise TypeError(f"{name} flattens each client's value into one vector, so "
                      f"value_type needs at least one tensor and every shape known; got "
                      f"{value_type}.")
    d = sum(math.prod(leaf.shape) for leaf in leaves)
    dtype = np.promote_types(np.result_type(*[leaf.dtype for leaf in leaves]), np.float32)
    stateful = _has_state(self._initial_state(d, dtype))

    @fedjit.jax_computation
    def initial_state():
      return jax.tree_util.tree_map(jnp.asarray, self._initial_state(d, dtype))

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_eval(initial_state, SERVER) if stateful else _empty()

    def step(stacked, state):
      x, unflatten = _flatten(stacked, dtype)
      result, new_state, measurements = self._aggregate(x, state)
      return unflatten(result), new_state, measurements

    def stateless(stacked):
      result, _, measurements = step(stacked, collections.OrderedDict())
      return result, measurements

    step.__name__ = stateless.__name__ = name  # errors name the factory

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      collected = fedjit.federated_collect(value)
      stacked_type = collected.type_signature.member
      if stateful:
        aggregate = fedjit.jax_computation(step, stacked_type, state.type_signature.member)
        result, new_state, measurements = fedjit.federated_map(aggregate, (collected, state))
      else:
        aggregate = fedjit.jax_computation(stateless, stacked_type)
        result, measurements = fedjit.federated_map(aggregate, collected)
        new_state = state
      return MeasuredProcessOutput(new_state, result, measurements)

    return AggregationProcess(initialize_fn, next_fn)


def _byzantine(owner: str, num_byzantine: Any) -> int:
  return rm._check_int(owner, "num_byzantine", num_byzantine, 0,
                       " (the number of Byzantine clients to tolerate)")


class CoordinateMedianFactory(_RobustFactory):
  """The per-coordinate median of the clients' values (Yin et al. 2018).

  Every coordinate of the result is the median of that coordinate over the
  clients (for an even count, the mean of the two middle values). It
  tolerates any minority of Byzantine clients per coordinate. No state;
  measurements `OrderedDict(num_clients=int32)`.

  Args:
    chunk: sort `chunk` columns at a time (see
      `_robust_math.coordinate_median`), for large cohorts and models.

  Example:
    >>> process = CoordinateMedianFactory().create(fedjit.TensorType(np.float32))
    >>> process.next(process.initialize(), [1.0, 2.0, 100.0]).result
    np.float32(2.0)
  """

  def __init__(self, chunk: int | None = None):
    self._chunk = rm._check_chunk("CoordinateMedianFactory", chunk)

  def _aggregate(self, x, state):
    return (rm.coordinate_median(x, self._chunk), state,
            collections.OrderedDict(num_clients=_num_clients(x)))


class TrimmedMeanFactory(_RobustFactory):
  """The per-coordinate trimmed mean (Yin et al. 2018).

  Per coordinate, the b largest and b smallest client values are dropped
  and the rest averaged. Give b as `num_trimmed`, or as `trim_fraction`
  (b = floor(trim_fraction * n) for the n clients of the round). Needs
  n > 2b. No state; measurements `OrderedDict(num_clients=int32,
  num_trimmed=int32)`.

  Args:
    num_trimmed: b >= 0.
    trim_fraction: in [0, 0.5).

  Raises:
    ValueError: if neither or both are given, or one is out of range.

  Example:
    >>> process = TrimmedMeanFactory(num_trimmed=1).create(fedjit.TensorType(np.float32))
    >>> process.next(process.initialize(), [1.0, 2.0, 3.0, 100.0]).result
    np.float32(2.5)
  """

  def __init__(self, num_trimmed: int | None = None, trim_fraction: float | None = None):
    owner = "TrimmedMeanFactory"
    if (num_trimmed is None) == (trim_fraction is None):
      raise ValueError(f"{owner} needs exactly one of num_trimmed (values dropped at each "
                       f"end of every coordinate) and trim_fraction (that number as a "
                       f"fraction of the clients); got num_trimmed={num_trimmed!r}, "
                       f"trim_fraction={trim_fraction!r}.")
    self._num_trimmed = self._fraction = None
    if num_trimmed is not None:
      self._num_trimmed = rm._check_int(owner, "num_trimmed", num_trimmed, 0)
    else:
      fraction = _number(owner, "trim_fraction", trim_fraction)
      if fraction >= 0.5:
        raise ValueError(f"{owner} expects trim_fraction in [0, 0.5) (it drops that "
                         f"fraction at each end), got {fraction}.")
      self._fraction = fractions.Fraction(fraction).limit_denominator(1_000_000)

  def _trimmed(self, n):
    if self._num_trimmed is not None:
      return self._num_trimmed
    # floor(fraction * n), exact (and valid for a symbolic n).
    return (self._fraction.numerator * n) // self._fraction.denominator

  def _aggregate(self, x, state):
    b = self._trimmed(x.shape[0])
    return (rm.trimmed_mean(x, b), state,
            collections.OrderedDict(num_clients=_num_clients(x), num_trimmed=rm._value(b)))


class KrumFactory(_RobustFactory):
  """Krum and Multi-Krum (Blanchard et al. 2017).

  Each client is scored by the sum of squared distances to its
  n - f - 2 nearest others (f = `num_byzantine`); the result is the mean of
  the `num_selected` lowest-scoring clients' values. Needs n > 2f + 2
  clients. No state; measurements `OrderedDict(num_clients=int32,
  num_selected=int32, selected=int32[num_selected])` (the chosen clients'
  positions in the round's cohort order).

  Args:
    num_byzantine: f >= 0.
    num_selected: m >= 1 (1: Krum; more: Multi-Krum).

  Example:
    >>> process = KrumFactory(num_byzantine=1).create(fedjit.TensorType(np.float32))
    >>> out = process.next(process.initialize(), [0.0, 0.1, 0.2, 0.3, 50.0])
    >>> out.result, out.measurements["selected"]
    (np.float32(0.1), array([1], dtype=int32))
  """

  def __init__(self, num_byzantine: int, num_selected: int = 1):
    self._f = _byzantine("KrumFactory", num_byzantine)
    self._m = rm._check_int("KrumFactory", "num_selected", num_selected, 1)

  def _aggregate(self, x, state):
    result, selected = rm.krum(x, self._f, self._m)
    return result, state, collections.OrderedDict(
        num_clients=_num_clients(x), num_selected=jnp.int32(self._m), selected=selected)


class BulyanFactory(_RobustFactory):
  """Bulyan (El Mhamdi et al. 2018): theta = n - 2f clients chosen by
  repeated Krum, then per coordinate the mean of the theta - 2f chosen
  values nearest their median (f = `num_byzantine`). Needs n >= 4f + 3
  clients. No state; measurements `OrderedDict(num_clients=int32,
  num_selected=int32)` (theta).

  Args:
    num_byzantine: f >= 0.
    chunk: columns per block for the per-coordinate step.

  Example:
    >>> process = BulyanFactory(num_byzantine=1).create(fedjit.TensorType(np.float32))
    >>> process.next(process.initialize(), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 100.0]).result
    np.float32(0.20000002)
  """

  def __init__(self, num_byzantine: int, chunk: int | None = None):
    self._f = _byzantine("BulyanFactory", num_byzantine)
    self._chunk = rm._check_chunk("BulyanFactory", chunk)

  def _aggregate(self, x, state):
    result, _ = rm.bulyan(x, self._f, self._chunk)
    return result, state, collections.OrderedDict(
        num_clients=_num_clients(x), num_selected=rm._value(x.shape[0] - 2 * self._f))


class GeometricMedianFactory(_RobustFactory):
  """The geometric median of the clients' values: RFA (Pillutla et al.
  2022), by the smoothed Weiszfeld iteration of
  `_robust_math.geometric_median`, every client weighted equally (RFA's
  weights are the clients' example counts; here they would be
  self-reported, see the module docstring). No state; measurements
  `OrderedDict(num_clients=int32, iterations=int32)`.

  Args:
    max_iterations: the most Weiszfeld steps (RFA uses 3 or 4; the
      default 100 stops earlier once a step moves the median by at most
      `tol` relative).
    nu: the smoothing, > 0.
    tol: the relative step at which to stop, >= 0.

  Example:
    >>> process = GeometricMedianFactory().create(fedjit.TensorType(np.float32, [2]))
  """

  def __init__(self, max_iterations: int = 100, nu: float = 1e-6, tol: float = 1e-6):
    _, self._max_iterations, self._nu, self._tol = rm._check_geometric_median(
        np.zeros((1, 1), np.float32), max_iterations, nu, tol)

  def _aggregate(self, x, state):
    result, iterations = rm._weiszfeld(x, self._max_iterations, self._nu, self._tol)
    return result, state, collections.OrderedDict(num_clients=_num_clients(x),
                                                  iterations=iterations)


class CenteredClippingFactory(_RobustFactory):
  """Centered clipping (Karimireddy et al. 2021) around the previous
  round's aggregate.

  With v the last round's result (zero in the first round), `iterations`
  times: v <- v + mean_i clip(x_i - v, radius). A Byzantine client moves
  the result by at most radius / n per iteration. State:
  `OrderedDict(center=[d])`, the last result flattened (float32, or
  float64 for float64 values); measurements `OrderedDict(num_clients=int32)`.

  Args:
    radius: the clipping radius, > 0.
    iterations: >= 1.

  Example:
    >>> process = CenteredClippingFactory(radius=1.0).create(fedjit.TensorType(np.float32))
    >>> process.next(process.initialize(), [0.5, 1.0, 100.0]).result   # (0.5 + 1 + 1) / 3
    np.float32(0.8333334)
  """

  def __init__(self, radius: float, iterations: int = 1):
    self._radius = _number("CenteredClippingFactory", "radius", radius, positive=True)
    self._iterations = rm._check_int("CenteredClippingFactory", "iterations", iterations, 1)

  def _initial_state(self, d, dtype):
    return collections.OrderedDict(center=np.zeros(d, dtype))

  def _aggregate(self, x, state):
    result = rm.centered_clipping(x, state["center"], self._radius, self._iterations)
    return (result, collections.OrderedDict(center=result),
            collections.OrderedDict(num_clients=_num_clients(x)))


def _check_inner(owner: str, inner: Any) -> _RobustFactory:
  if isinstance(inner, _RobustFactory):
    return inner
  given = type(inner).__name__
  if isinstance(inner, WeightedAggregationFactory):
    given += ", a weighted aggregation factory"
  raise TypeError(
      f"{owner} transforms the clients' values on the server and hands the resulting "
      f"rows to `inner`, so inner must be one of fedjit.aggregators' robust factories "
      f"(CoordinateMedianFactory(), TrimmedMeanFactory(...), KrumFactory(...), "
      f"BulyanFactory(...), GeometricMedianFactory(), CenteredClippingFactory(...), or "
      f"another mixing or bucketing factory); got {given}.")


class NearestNeighborMixingFactory(_RobustFactory):
  """Nearest-neighbour mixing (Allouah et al. 2023) in front of a robust
  rule: each client's value is replaced by the mean of its n - f nearest
  values (its own included, f = `num_byzantine`), then `inner` aggregates
  the n mixed rows. State: inner's; measurements `OrderedDict(
  num_clients=int32, inner=inner's measurements)`.

  Args:
    num_byzantine: f, 0 <= f < n.
    inner: a robust factory of this module (such as `KrumFactory(f)`).

  Raises:
    TypeError: if inner is not a robust factory (a `MeanFactory`, say).

  Example:
    >>> factory = NearestNeighborMixingFactory(2, inner=KrumFactory(num_byzantine=2))
  """

  def __init__(self, num_byzantine: int, inner: _RobustFactory):
    self._f = _byzantine("NearestNeighborMixingFactory", num_byzantine)
    self._inner = _check_inner("NearestNeighborMixingFactory", inner)

  def _initial_state(self, d, dtype):
    return self._inner._initial_state(d, dtype)

  def _aggregate(self, x, state):
    result, state, inner = self._inner._aggregate(rm.nearest_neighbor_mixing(x, self._f),
                                                  state)
    return result, state, collections.OrderedDict(num_clients=_num_clients(x), inner=inner)


class BucketingFactory(_RobustFactory):
  """Bucketing (Karimireddy et al. 2022) in front of a robust rule: each
  round the clients are shuffled into buckets of `bucket_size`, and `inner`
  aggregates the ceil(n / bucket_size) bucket means (the last bucket may
  be smaller and is the mean of its own clients; see
  `_robust_math.bucketing`).

  The shuffle comes from a JAX key in the state, split every round: from
  `seed`, or from the OS CSPRNG when `seed` is None (drawn once, when the
  factory is made). State: `OrderedDict(key=uint32[2])`, plus `inner=`
  inner's state when it has one; measurements `OrderedDict(
  num_clients=int32, num_buckets=int32, inner=inner's measurements)`.

  Args:
    bucket_size: s >= 1.
    inner: a robust factory of this module (such as `KrumFactory(f)`;
      it sees ceil(n / s) rows).
    seed: an int >= 0 for a reproducible shuffle, or None.

  Raises:
    TypeError: if inner is not a robust factory, or seed is not an int.

  Example:
    >>> factory = BucketingFactory(2, inner=CoordinateMedianFactory(), seed=0)
  """

  def __init__(self, bucket_size: int, inner: _RobustFactory, seed: int | None = None):
    self._s = rm._check_int("BucketingFactory", "bucket_size", bucket_size, 1)
    self._inner = _check_inner("BucketingFactory", inner)
    try:
      self._key = _initial_key(seed)
    except TypeError:
      raise TypeError(f"BucketingFactory expects seed to be None (a key from the OS "
                      f"CSPRNG) or an int >= 0, got {seed!r}.") from None

  def _initial_state(self, d, dtype):
    state = collections.OrderedDict(key=np.asarray(self._key, np.uint32))
    inner = self._inner._initial_state(d, dtype)
    if _has_state(inner):
      state["inner"] = inner
    return state

  def _aggregate(self, x, state):
    key, use = jax.random.split(state["key"])
    buckets = rm.bucketing(x, self._s, use)
    inner_stateful = _has_state(self._inner._initial_state(x.shape[1], x.dtype))
    result, inner_state, inner = self._inner._aggregate(
        buckets, state["inner"] if inner_stateful else collections.OrderedDict())
    new_state = collections.OrderedDict(key=key)
    if inner_stateful:
      new_state["inner"] = inner_state
    return result, new_state, collections.OrderedDict(
        num_clients=_num_clients(x), num_buckets=_num_clients(buckets), inner=inner)


# ------------------------------------------------- clipping and zeroing


def _global_norm(value: Any, order: float) -> jax.Array:
  """TFF's global norms of a structure, in float32: l1, l2 or l-infinity."""
  leaves = [x.astype(jnp.float32) for x in jax.tree_util.tree_leaves(value)]
  if order == 1:
    return sum(jnp.sum(jnp.abs(x)) for x in leaves)
  if order == 2:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))
  return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves]))


def _constant_norm_process(norm: float) -> EstimationProcess:
  """TFF's `_constant_process`: empty state, `report` is `norm`."""

  @fedjit.jax_computation
  def norm_value():
    return jnp.float32(norm)

  @fedjit.federated_computation
  def initialize_fn():
    return _empty()

  state_type = initialize_fn.type_signature.result

  @fedjit.federated_computation(state_type, FederatedType(FLOAT, CLIENTS))
  def next_fn(state, value):
    del value
    return state

  @fedjit.federated_computation(state_type)
  def report_fn(state):
    del state
    return fedjit.federated_eval(norm_value, SERVER)

  return EstimationProcess(initialize_fn, next_fn, report_fn)


def _norm_wrapper(kind: str, norm: Any, order: float, inner_factory: Any,
                  count_factory: Any, value_type: Any, weight_type: Any):
  """The process of `clipping_factory` / `zeroing_factory` (TFF's
  `_make_wrapper`): `norm` is a float or an `EstimationProcess`."""
  owner = f"{kind}_factory"
  prefix = "clipp" if kind == "clipping" else "zero"
  value_type = _check_value_type(owner, value_type)
  if weight_type is None:
    inner = inner_factory.create(value_type)
  else:
    weight_type = _check_value_type(owner, weight_type, "weight_type", floats=False)
    inner = inner_factory.create(value_type, weight_type)
  counter = count_factory.create(COUNT)
  adaptive = isinstance(norm, EstimationProcess)
  norm_process = norm if adaptive else _constant_norm_process(norm)

  @fedjit.jax_computation(value_type, FLOAT)
  def apply(value, bound):
    global_norm = _global_norm(value, order)
    over = global_norm > bound
    if kind == "clipping":  # TFF: x / (norm / clip) when norm > clip
      divisor = global_norm / bound
      out = jax.tree_util.tree_map(
          lambda x: jnp.where(over, x / divisor.astype(x.dtype), x), value)
    else:
      out = jax.tree_util.tree_map(lambda x: jnp.where(over, jnp.zeros_like(x), x), value)
    return out, global_norm, over.astype(jnp.int32)

  @fedjit.federated_computation
  def initialize_fn():
    return fedjit.federated_zip(collections.OrderedDict([
        (prefix + "ing_norm", norm_process.initialize()), ("inner_agg", inner.initialize()),
        (prefix + "ed_count_agg", counter.initialize())]))

  def next_impl(state, value, weight=None):
    norm_state = state[prefix + "ing_norm"]
    bound = norm_process.report(norm_state)
    processed, norms, flags = fedjit.federated_map(
        apply, (value, fedjit.federated_broadcast(bound)))
    # A constant norm's state is empty: its `next` would ignore the norms.
    new_norm_state = norm_process.next(norm_state, norms) if adaptive else norm_state
    if weight is None:
      out = inner.next(state["inner_agg"], processed)
    else:
      out = inner.next(state["inner_agg"], processed, weight)
    count = counter.next(state[prefix + "ed_count_agg"], flags)
    return MeasuredProcessOutput(
        fedjit.federated_zip(collections.OrderedDict([
            (prefix + "ing_norm", new_norm_state), ("inner_agg", out.state),
            (prefix + "ed_count_agg", count.state)])),
        out.result,
        fedjit.federated_zip(collections.OrderedDict([
            (prefix + "ing", out.measurements), (prefix + "ing_norm", bound),
            (prefix + "ed_count", count.result)])))

  state_type = initialize_fn.type_signature.result
  if weight_type is None:
    def next_fn(state, value):
      return next_impl(state, value)
    types = (state_type, FederatedType(value_type, CLIENTS))
  else:
    def next_fn(state, value, weight):
      return next_impl(state, value, weight)
    types = (state_type, FederatedType(value_type, CLIENTS), FederatedType(weight_type, CLIENTS))
  return AggregationProcess(initialize_fn, fedjit.federated_computation(next_fn, *types))


class _UnweightedNormFactory(UnweightedAggregationFactory):
  """`clipping_factory` / `zeroing_factory` around an unweighted inner factory."""

  def __init__(self, *spec):
    self._spec = spec

  @property
  def accountant(self):
    """The inner factory's `PrivacyAccountant` (None if it has none)."""
    return getattr(self._spec[3], "accountant", None)

  def create(self, value_type: Any) -> AggregationProcess:
    return _norm_wrapper(*self._spec, value_type, None)


class _WeightedNormFactory(WeightedAggregationFactory):
  """`clipping_factory` / `zeroing_factory` around a weighted inner factory."""

  def __init__(self, *spec):
    self._spec = spec

  @property
  def accountant(self):
    """The inner factory's `PrivacyAccountant` (None if it has none)."""
    return getattr(self._spec[3], "accountant", None)

  def create(self, value_type: Any, weight_type: Any = FLOAT) -> AggregationProcess:
    return _norm_wrapper(*self._spec, value_type, weight_type)


def _wrap(kind: str, norm: Any, order: float, inner: Any, count_factory: Any, positive: bool):
  owner = f"{kind}_factory"
  if not isinstance(inner, (UnweightedAggregationFactory, WeightedAggregationFactory)):
    raise TypeError(f"{owner} expects inner_agg_factory to be an aggregation factory "
                    f"(weighted, such as MeanFactory(), or unweighted, such as "
                    f"UnweightedMeanFactory() or KrumFactory(1)); got {inner!r}.")
  if isinstance(norm, EstimationProcess):
    norm = _check_norm_process(owner, f"{kind}_norm", norm)
  elif isinstance(norm, bool) or not isinstance(norm, numbers.Real):
    raise TypeError(f"{owner} expects {kind}_norm to be a fixed {kind} norm (a float) or "
                    f"a fedjit.templates.EstimationProcess of the norm (such as "
                    f"fedjit.aggregators.PrivateQuantileEstimationProcess.no_noise(...)); "
                    f"got {norm!r}.")
  else:
    norm = _number(owner, f"{kind}_norm", norm, positive=positive)
  counted = "clipped" if kind == "clipping" else "zeroed"
  count_factory = _check_factory(owner, f"{counted}_count_sum_factory", count_factory)
  spec = (kind, norm, order, inner, count_factory)
  if isinstance(inner, WeightedAggregationFactory):
    return _WeightedNormFactory(*spec)
  return _UnweightedNormFactory(*spec)


def clipping_factory(clipping_norm: float | EstimationProcess, inner_agg_factory: Any,
                     clipped_count_sum_factory: UnweightedAggregationFactory | None = None
                     ) -> UnweightedAggregationFactory | WeightedAggregationFactory:
  """TFF's `clipping_factory`: every client's value is projected onto the
  l2 ball of radius C (all tensors of a structure together: v / (|v| / C)
  when |v| > C), then aggregated by `inner_agg_factory`.

  C is `clipping_norm`, a float, or, when it is an `EstimationProcess`
  (such as `PrivateQuantileEstimationProcess.no_noise(1.0, 0.8, 0.2)`),
  `report(state)` of this round; the process's state is then updated with
  `next(state, norms@CLIENTS)`, the clients' l2 norms before clipping
  (adaptive clipping, as in TFF).

  The result is weighted or unweighted as `inner_agg_factory` is. State:
  `OrderedDict(clipping_norm=the norm process's state (() for a float),
  inner_agg=..., clipped_count_agg=...)`; measurements
  `OrderedDict(clipping=inner measurements, clipping_norm=float32 (this
  round's C), clipped_count=int32)` (the clients clipped this round), TFF's
  names. A value whose norm is NaN is not clipped (as in TFF).

  Args:
    clipping_norm: C > 0, or an `EstimationProcess` of a float32 norm.
    inner_agg_factory: any aggregation factory, weighted or unweighted.
    clipped_count_sum_factory: an unweighted factory for the count
      (`SumFactory()`).

  Raises:
    TypeError: if inner_agg_factory is not a factory, or clipping_norm is
      neither a number nor an `EstimationProcess` of a float32 norm.
    ValueError: if clipping_norm <= 0.

  Example:
    >>> factory = clipping_factory(1.0, fedjit.aggregators.MeanFactory())
    >>> process = factory.create(fedjit.TensorType(np.float32, [2]))
    >>> out = process.next(process.initialize(), [[3.0, 4.0], [0.3, 0.4]], [1.0, 1.0])
    >>> out.result, out.measurements["clipped_count"]
    (array([0.45000002, 0.6       ], dtype=float32), np.int32(1))
    >>> adaptive = clipping_factory(
    ...     fedjit.aggregators.PrivateQuantileEstimationProcess.no_noise(1.0, 0.8, 0.2),
    ...     fedjit.aggregators.MeanFactory())
  """
  return _wrap("clipping", clipping_norm, 2.0, inner_agg_factory, clipped_count_sum_factory,
               positive=True)


def zeroing_factory(zeroing_norm: float | EstimationProcess, inner_agg_factory: Any,
                    norm_order: float = math.inf,
                    zeroed_count_sum_factory: UnweightedAggregationFactory | None = None
                    ) -> UnweightedAggregationFactory | WeightedAggregationFactory:
  """TFF's `zeroing_factory`: every client's value whose global norm (of
  order `norm_order`: 1, 2 or infinity) exceeds Z is replaced by zeros,
  then aggregated by `inner_agg_factory`.

  Z is `zeroing_norm`, a float, or, when it is an `EstimationProcess`,
  `report(state)` of this round; the state is then updated with
  `next(state, norms@CLIENTS)`, the clients' norms of order `norm_order`
  (adaptive zeroing; `fedjit.learning.robust_aggregator` uses
  `PrivateQuantileEstimationProcess.no_noise(10.0, 0.98, math.log(10.0),
  multiplier=2.0, increment=1.0)`, as TFF does).

  A zeroed value keeps its weight in a weighted inner aggregation, as in
  TFF, so much zeroing pulls a weighted mean toward zero. The result is
  weighted or unweighted as `inner_agg_factory` is. State:
  `OrderedDict(zeroing_norm=the norm process's state (() for a float),
  inner_agg=..., zeroed_count_agg=...)`; measurements
  `OrderedDict(zeroing=inner measurements, zeroing_norm=float32 (this
  round's Z), zeroed_count=int32)`. A value whose norm is NaN is not
  zeroed (as in TFF).

  Args:
    zeroing_norm: Z >= 0, or an `EstimationProcess` of a float32 norm.
    inner_agg_factory: any aggregation factory, weighted or unweighted.
    norm_order: 1.0, 2.0 or math.inf (the default, TFF's).
    zeroed_count_sum_factory: an unweighted factory for the count
      (`SumFactory()`).

  Raises:
    TypeError: if inner_agg_factory is not a factory, or a norm is neither
      a number nor an `EstimationProcess` of a float32 norm.
    ValueError: if zeroing_norm < 0 or norm_order is not 1, 2 or inf.

  Example:
    >>> factory = zeroing_factory(1.0, fedjit.aggregators.UnweightedMeanFactory())
    >>> process = factory.create(fedjit.TensorType(np.float32))
    >>> out = process.next(process.initialize(), [0.5, 3.0, -0.5, 1.0])
    >>> out.result, out.measurements["zeroed_count"]   # 3.0 became 0
    (np.float32(0.25), np.int32(1))
  """
  if isinstance(norm_order, bool) or not isinstance(norm_order, numbers.Real):
    raise TypeError(f"zeroing_factory expects norm_order to be 1.0, 2.0 or math.inf, got "
                    f"{norm_order!r}.")
  if not (norm_order in (1, 2) or norm_order == math.inf):
    raise ValueError(f"zeroing_factory expects norm_order to be 1.0, 2.0 or math.inf, got "
                     f"{norm_order}.")
  return _wrap("zeroing", zeroing_norm, float(norm_order), inner_agg_factory,
               zeroed_count_sum_factory, positive=False)

