"""Differentially private aggregation: clip, sum, add Gaussian noise, divide.

`DifferentiallyPrivateFactory` is TFF's factory of the same name for its two
Gaussian queries (DP-FedAvg, McMahan et al. 2018): every client clips its
update to ℓ2 norm C, the server sums the clipped updates, adds Gaussian noise
of standard deviation σ·C to every coordinate, and divides by the (expected)
number of clients per round. With adaptive clipping (Andrew, Thakkar et al.
2021) C follows a private estimate of a quantile of the clients' norms.

`tree_aggregation` adds DP-FTRL's noise instead (Kairouz et al. 2021): the
noise of every round is the difference of consecutive tree-aggregated
cumulative noises, so the running sum of the results carries the noise of
at most log₂(T) + 1 tree nodes.

Everything runs inside the compiled round; the noise comes from a JAX PRNG
key kept in the state.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, StructType, TensorType
from fedjit.learning.aggregators._accounting import PrivacyAccountant
from fedjit.learning.aggregators._mean import (SumFactory, UnweightedAggregationFactory,
                                               _check_factory, _check_value_type, _empty)
from fedjit.learning.aggregators._noise import (  # noqa: F401  (shared; _initial_key re-exported)
    _global_l2_norm, _initial_key, _number, privacy_computation)
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput

__all__ = ["DifferentiallyPrivateFactory", "adaptive_clip_noise_params"]

FLOAT = TensorType(np.float32)
ROUNDS = TensorType(np.int32)
KEY = TensorType(np.uint32, [2])



def adaptive_clip_noise_params(noise_multiplier: float, expected_clients_per_round: float,
                               clipped_count_stddev: float | None = None
                               ) -> tuple[float, float]:
  """The value noise multiplier and clipped-count stddev of adaptive clipping.

  Adaptive clipping also releases a noised count of the unclipped clients
  (each client adds `(norm ≤ C) - 1/2`, sensitivity 1/2, noise stddev
  `clipped_count_stddev`). Releasing the clipped sum with noise multiplier
  σ_v and the count together is one Gaussian mechanism whose noise
  multiplier σ satisfies σ⁻² = σ_v⁻² + (2·clipped_count_stddev)⁻², so for a
  total σ the values get σ_v = (σ⁻² - (2·clipped_count_stddev)⁻²)^(-1/2)
  (TFF's `adaptive_clip_noise_params`; Andrew et al. 2021, section 3.1).

  Args:
    noise_multiplier: the total (effective) noise multiplier σ ≥ 0.
    expected_clients_per_round: the expected number of clients per round.
    clipped_count_stddev: the count's noise stddev; default
      `0.05 * expected_clients_per_round` (0 when σ = 0).

  Returns:
    `(value_noise_multiplier, clipped_count_stddev)`.

  Raises:
    ValueError: if `noise_multiplier >= 2 * clipped_count_stddev`, where no
      value noise can reach σ.

  Example:
    >>> adaptive_clip_noise_params(1.0, 100)   # σ_v = (1 - 1/100)^(-1/2)
    (1.0050378152592121, 5.0)
  """
  if noise_multiplier > 0:
    if clipped_count_stddev is None:
      clipped_count_stddev = 0.05 * expected_clients_per_round
    if noise_multiplier >= 2 * clipped_count_stddev:
      raise ValueError(
          f"clipped_count_stddev = {clipped_count_stddev} (0.05 * clients_per_round "
          f"unless given) is too low for the total noise_multiplier {noise_multiplier}: "
          f"it needs noise_multiplier < 2 * clipped_count_stddev. Increase "
          f"clipped_count_stddev (or clients_per_round), or decrease noise_multiplier.")
    value_noise_multiplier = (noise_multiplier ** -2
                              - (2 * clipped_count_stddev) ** -2) ** -0.5
    if value_noise_multiplier / noise_multiplier >= 2:
      warnings.warn(
          f"Adaptive clipping adds {value_noise_multiplier / noise_multiplier:.2f}x the "
          f"noise to the values to reach the total noise_multiplier {noise_multiplier}; "
          f"increase clipped_count_stddev or clients_per_round.", UserWarning,
          stacklevel=3)
  else:
    if clipped_count_stddev is None:
      clipped_count_stddev = 0.0
    value_noise_multiplier = 0.0
  return value_noise_multiplier, clipped_count_stddev


@dataclasses.dataclass(frozen=True)
class _GaussianQuery:
  """What one DP aggregation does (the DP factory's configuration)."""
  noise_multiplier: float          # the total σ, for accounting
  value_noise_multiplier: float    # σ_v: the values' noise is σ_v · C
  clients_per_round: float         # the mean's denominator
  initial_clip: float
  adaptive: bool = False
  target_unclipped_quantile: float = 0.5
  learning_rate: float = 0.2
  clipped_count_stddev: float = 0.0
  tree: bool = False               # DP-FTRL's tree-aggregation noise





class DifferentiallyPrivateFactory(UnweightedAggregationFactory):
  """Central Gaussian DP mean of client values (TFF's `DifferentiallyPrivateFactory`).

  Build it with `gaussian_fixed`, `gaussian_adaptive` or `tree_aggregation`
  (DP-FTRL's noise, see there). A round:

  1. each client clips its value v to ℓ2 norm at most C (all tensors of a
     structure together): v · min(1, C / ‖v‖₂);
  2. the clipped values are summed by `record_aggregation_factory`
     (`SumFactory()`);
  3. the server adds independent N(0, (σ_v·C)²) noise to every coordinate
     and divides by `clients_per_round`:
     result = (Σᵢ clip(vᵢ) + N(0, σ_v²C²·I)) / clients_per_round.

  Dividing by the configured `clients_per_round`, not the number of clients
  that came, keeps the sensitivity of the mean C / clients_per_round, as in
  TFF's DP mean.

  State: `OrderedDict(clip=C, key=uint32[2] PRNG key, rounds=int32 rounds so
  far, record_agg=inner state)` (the tree's key stays the same all run: its
  nodes' noise is drawn from it by position). Measurements: `OrderedDict(dp_query_metrics=
  ..., dp=inner measurements)`; `dp_query_metrics` is `{'clip': C'}` (the clip
  for the next round) with adaptive clipping and `()` with a fixed one, as in
  TFF. With an `accountant`, measurements also hold `privacy=OrderedDict(
  rounds=n, epsilon=ε, delta=δ)`.

  **Accounting.** ε depends on the configuration and the number of rounds
  only, never on the data, and the Python accountant (`dp-accounting`)
  cannot be traced. So the compiled round counts the rounds in its state and
  reads ε from `accountant.epsilon(rounds)` through one scalar host callback
  (`jax.pure_callback`; about a millisecond, RDP composes additively so one
  round's RDP curve is computed once). The round stays one compiled
  program, and a restored checkpoint holds the round count, so a resumed run
  reports exactly the ε of an uninterrupted one. The PLD cross-check
  (`factory.accountant.epsilon(n, method="pld")`) takes about a second, so
  it is left to the host. A round with a host callback cannot be exported
  with `jax.export`; build the aggregator without `accountant` for that and
  call `accountant.epsilon(rounds)` yourself.

  **Noise and seeds.** The noise comes from the JAX key in the state, so a
  simulation with a fixed `noise_seed` is reproducible and the same on every
  backend. With `noise_seed=None` (the default) the key is 64 bits from the
  operating system's CSPRNG (`secrets`), drawn when the process is created.
  A deployment must use that default (or seed from `os.urandom` itself) and
  keep the state secret: whoever knows the key can subtract the noise. JAX's
  threefry generator and float32 sampling are not hardened against the
  floating-point attacks on DP noise (Mironov 2012); for a formal guarantee
  in production, use a vetted secure noise source.

  Example:
    >>> factory = DifferentiallyPrivateFactory.gaussian_fixed(
    ...     noise_multiplier=1.0, clients_per_round=2, clip=0.5, noise_seed=0,
    ...     accountant=PrivacyAccountant(population_size=100, delta=1e-4))
    >>> process = factory.create(fedjit.TensorType(np.float32, [3]))
    >>> out = process.next(process.initialize(),
    ...                    [np.ones(3, np.float32), np.zeros(3, np.float32)])
    >>> out.result            # (clip([1, 1, 1]) + 0 + N(0, 0.5² I)) / 2
    array([ 0.19406442, -0.04820671, -0.17034566], dtype=float32)
    >>> out.measurements["privacy"]["epsilon"]
    np.float32(4.309288)
  """

  def __init__(self, query: _GaussianQuery,
               record_aggregation_factory: UnweightedAggregationFactory | None = None, *,
               accountant: PrivacyAccountant | None = None, noise_seed: int | None = None):
    if not isinstance(query, _GaussianQuery):
      raise TypeError(f"Build a DifferentiallyPrivateFactory with "
                      f"DifferentiallyPrivateFactory.gaussian_fixed(...) or "
                      f".gaussian_adaptive(...); got the query {query!r}.")
    self._query = query
    self._record_factory = _check_factory("DifferentiallyPrivateFactory",
                                          "record_aggregation_factory",
                                          record_aggregation_factory)
    if accountant is not None:
      if not isinstance(accountant, PrivacyAccountant):
        raise TypeError(f"DifferentiallyPrivateFactory expects accountant to be a "
                        f"fedjit.aggregators.PrivacyAccountant (such as "
                        f"PrivacyAccountant(population_size=1000, delta=1e-5)), got "
                        f"{accountant!r}.")
      accountant = accountant.bind(query.noise_multiplier, query.clients_per_round)
    self._accountant = accountant
    _initial_key(noise_seed)  # checks it
    self._noise_seed = noise_seed

  @property
  def accountant(self) -> PrivacyAccountant | None:
    """The `PrivacyAccountant` for this mechanism (None if not given)."""
    return self._accountant

  @classmethod
  def gaussian_fixed(cls, noise_multiplier: float, clients_per_round: float, clip: float, *,
                     accountant: PrivacyAccountant | None = None,
                     noise_seed: int | None = None,
                     record_aggregation_factory: UnweightedAggregationFactory | None = None
                     ) -> DifferentiallyPrivateFactory:
    """DP mean with a fixed clip C and Gaussian noise of stddev σ·C.

    Args:
      noise_multiplier: σ ≥ 0, the noise stddev over the clip (1.0 or more
        for meaningful privacy; 0 adds no noise).
      clients_per_round: the (expected) clients per round, > 0; the mean's
        denominator.
      clip: C > 0, the ℓ2 norm each client's value is clipped to.
      accountant: a `PrivacyAccountant(population_size, delta, sampling)` to
        report ε every round; σ and clients_per_round are filled in.
      noise_seed: an int for reproducible noise; None (default) seeds from
        the OS CSPRNG, as a deployment must.
      record_aggregation_factory: an `UnweightedAggregationFactory` summing
        the clipped values (`SumFactory()`; TFF's constructor argument). It
        must not raise their sensitivity (a sum, a secure sum).

    Returns:
      A `DifferentiallyPrivateFactory`.

    Raises:
      ValueError: if σ < 0, clients_per_round ≤ 0 or clip ≤ 0 (TypeError
        for a non-number).

    Example:
      >>> factory = DifferentiallyPrivateFactory.gaussian_fixed(1.0, 100, clip=0.1)
    """
    owner = "DifferentiallyPrivateFactory.gaussian_fixed"
    noise_multiplier = _number(owner, "noise_multiplier", noise_multiplier)
    clients_per_round = _number(owner, "clients_per_round", clients_per_round, positive=True)
    clip = _number(owner, "clip", clip, positive=True)
    query = _GaussianQuery(noise_multiplier, noise_multiplier, clients_per_round, clip)
    return cls(query, record_aggregation_factory, accountant=accountant,
               noise_seed=noise_seed)

  @classmethod
  def gaussian_adaptive(cls, noise_multiplier: float, clients_per_round: float,
                        initial_l2_norm_clip: float = 0.1,
                        target_unclipped_quantile: float = 0.5,
                        learning_rate: float = 0.2,
                        clipped_count_stddev: float | None = None, *,
                        accountant: PrivacyAccountant | None = None,
                        noise_seed: int | None = None,
                        record_aggregation_factory: UnweightedAggregationFactory | None = None
                        ) -> DifferentiallyPrivateFactory:
    """DP mean whose clip adapts to a quantile of the clients' norms.

    Each round, with clip C: the clients report b = (‖v‖₂ ≤ C) - 1/2 beside
    their clipped value; the server computes the noised unclipped fraction
    f = clamp((Σ b + N(0, clipped_count_stddev²)) / clients_per_round + 1/2,
    0, 1) and updates geometrically, C ← C · exp(-learning_rate · (f -
    target_unclipped_quantile)) (Andrew et al. 2021). The values get noise
    σ_v·C with σ_v from `adaptive_clip_noise_params`, so that values and
    count together have the total noise multiplier σ.

    Args:
      noise_multiplier: the total σ ≥ 0 (what the accounting uses).
      clients_per_round: the (expected) clients per round, > 0.
      initial_l2_norm_clip: the first C, > 0.
      target_unclipped_quantile: the fraction of clients to leave unclipped,
        in [0, 1].
      learning_rate: the clip's learning rate, ≥ 0 (C changes by at most a
        factor exp(learning_rate) a round).
      clipped_count_stddev: the count noise, ≥ 0; default
        `0.05 * clients_per_round` (0 when σ = 0).
      accountant, noise_seed, record_aggregation_factory: as in
        `gaussian_fixed` (the inner factory sums `(clipped value, b)` pairs).

    Returns:
      A `DifferentiallyPrivateFactory`.

    Raises:
      ValueError: for an out-of-range argument, or a `clipped_count_stddev`
        too small for σ (σ must be below 2 · clipped_count_stddev).

    Example:
      >>> factory = DifferentiallyPrivateFactory.gaussian_adaptive(1.0, 100)
    """
    owner = "DifferentiallyPrivateFactory.gaussian_adaptive"
    noise_multiplier = _number(owner, "noise_multiplier", noise_multiplier)
    clients_per_round = _number(owner, "clients_per_round", clients_per_round, positive=True)
    initial_l2_norm_clip = _number(owner, "initial_l2_norm_clip", initial_l2_norm_clip,
                                   positive=True)
    target_unclipped_quantile = _number(owner, "target_unclipped_quantile",
                                        target_unclipped_quantile, probability=True)
    learning_rate = _number(owner, "learning_rate", learning_rate)
    if clipped_count_stddev is not None:
      clipped_count_stddev = _number(owner, "clipped_count_stddev", clipped_count_stddev)
    value_nm, clipped_count_stddev = adaptive_clip_noise_params(
        noise_multiplier, clients_per_round, clipped_count_stddev)
    query = _GaussianQuery(noise_multiplier, value_nm, clients_per_round,
                           initial_l2_norm_clip, True, target_unclipped_quantile,
                           learning_rate, clipped_count_stddev)
    return cls(query, record_aggregation_factory, accountant=accountant,
               noise_seed=noise_seed)

  @classmethod
  def local_gaussian(cls, noise_multiplier: float, clip: float, *,
                     noise_seed: int | None = None, accountant: Any = None):
    """Local DP: each client clips its value to ℓ2 norm `clip` and adds
    N(0, (noise_multiplier · clip)²) noise itself, before the value leaves
    it; the server averages the noised values (a `LocalGaussianFactory`;
    see its docstring). With `accountant=PrivacyAccountant(population_size,
    delta, sampling="local")` each round reports the clients' ε.

    Example:
      >>> factory = DifferentiallyPrivateFactory.local_gaussian(1.0, clip=0.5, noise_seed=0)
    """
    from fedjit.learning.aggregators._local_dp import LocalGaussianFactory
    return LocalGaussianFactory(noise_multiplier, clip, noise_seed=noise_seed,
                                accountant=accountant)

  @classmethod
  def tree_aggregation(cls, noise_multiplier: float, clients_per_round: float,
                       l2_norm_clip: float, record_specs: Any = None,
                       noise_seed: int | None = None, use_efficient: bool = False,
                       record_aggregation_factory: UnweightedAggregationFactory | None = None
                       ) -> DifferentiallyPrivateFactory:
    """DP mean with tree-aggregation noise, for DP-FTRL (TFF's `tree_aggregation`).

    The clients clip to `l2_norm_clip` = C as in `gaussian_fixed`. Every node
    of a binary tree over the rounds holds independent N(0, (σC)²) noise
    (drawn from the key in the state, by level and index, so it is never
    stored). The cumulative noise after t rounds, N(t), is the sum of the
    nodes of t's dyadic decomposition (one per set bit of t), and round t
    returns (Σᵢ clip(vᵢ) + N(t) - N(t-1)) / clients_per_round: the running
    sum of the results has only popcount(t) nodes' noise. With a server SGD
    optimizer this is DP-FTRL ("Practical and Private (Deep) Learning
    without Sampling or Shuffling", Kairouz et al. 2021). σ is the noise of
    each node, before the division by clients_per_round, as in TFF.

    This is the basic tree (TFF's `use_efficient=False`); Honaker's
    efficient estimator (TFF's default, `use_efficient=True`) is not
    implemented. As in TFF (whose tree queries report an
    `UnsupportedDpEvent`), there is no accountant: the guarantee depends on
    how often a client takes part (see the paper).

    Args:
      noise_multiplier: σ ≥ 0, the noise stddev of a tree node over C.
      clients_per_round: the (expected) clients per round, > 0.
      l2_norm_clip: C > 0.
      record_specs: accepted for TFF's signature and ignored: the types come
        from `create(value_type)`.
      noise_seed: as in `gaussian_fixed`.
      use_efficient: must be False (see above).
      record_aggregation_factory: an `UnweightedAggregationFactory` for the
        sum of the clipped values (`SumFactory()`).

    Returns:
      A `DifferentiallyPrivateFactory`.

    Raises:
      ValueError: for σ < 0, clients_per_round ≤ 0 or C ≤ 0.
      NotImplementedError: for `use_efficient=True`.

    Example:
      >>> factory = DifferentiallyPrivateFactory.tree_aggregation(
      ...     noise_multiplier=1.0, clients_per_round=100, l2_norm_clip=0.5)
    """
    del record_specs  # the value type comes from create()
    owner = "DifferentiallyPrivateFactory.tree_aggregation"
    noise_multiplier = _number(owner, "noise_multiplier", noise_multiplier)
    clients_per_round = _number(owner, "clients_per_round", clients_per_round, positive=True)
    l2_norm_clip = _number(owner, "l2_norm_clip", l2_norm_clip, positive=True)
    if use_efficient:
      raise NotImplementedError(
          "DifferentiallyPrivateFactory.tree_aggregation has only the basic tree: "
          "Honaker's efficient estimator (TFF's use_efficient=True) is not implemented. "
          "Pass use_efficient=False.")
    query = _GaussianQuery(noise_multiplier, noise_multiplier, clients_per_round,
                           l2_norm_clip, tree=True)
    return cls(query, record_aggregation_factory, noise_seed=noise_seed)

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` computing the DP mean of `value_type` values.

    Raises:
      TypeError: if the type is placed, a function or a sequence, or not
        floating point.

    Example:
      >>> process = factory.create(update_type)
    """
    q = self._query
    value_type = _check_value_type("DifferentiallyPrivateFactory", value_type)
    record_type = StructType([value_type, FLOAT]) if q.adaptive else value_type
    record_process = self._record_factory.create(record_type)
    sum_type = record_process.result_type.member
    key0 = _initial_key(self._noise_seed)
    accountant = self._accountant

    @fedjit.jax_computation
    def initial_query_state():
      return collections.OrderedDict(clip=jnp.float32(q.initial_clip),
                                     key=jnp.asarray(key0, jnp.uint32),
                                     rounds=jnp.int32(0))

    @fedjit.federated_computation
    def initialize_fn():
      s = fedjit.federated_eval(initial_query_state, SERVER)
      return fedjit.federated_zip(collections.OrderedDict(
          clip=s.clip, key=s.key, rounds=s.rounds, record_agg=record_process.initialize()))

    @fedjit.jax_computation(value_type, FLOAT)
    def client_record(value, clip):
      norm = _global_l2_norm(value)
      # tf.clip_by_global_norm: v · C / max(‖v‖, C).
      scale = clip / jnp.maximum(norm, clip)
      clipped = jax.tree_util.tree_map(lambda x: (x * scale).astype(x.dtype), value)
      if not q.adaptive:
        return clipped
      return clipped, (norm <= clip).astype(jnp.float32) - 0.5

    @fedjit.jax_computation(sum_type, FLOAT, KEY)
    def noised_mean(record_sum, clip, key):
      value_sum = record_sum[0] if q.adaptive else record_sum
      leaves, treedef = jax.tree_util.tree_flatten(value_sum)
      key, use = jax.random.split(key)
      keys = jax.random.split(use, len(leaves) + 1)
      stddev = jnp.float32(q.value_noise_multiplier) * clip
      noised = [x + (stddev * jax.random.normal(k, x.shape, jnp.float32)).astype(x.dtype)
                for x, k in zip(leaves, keys[:-1])]
      mean = [(x / jnp.asarray(q.clients_per_round, x.dtype)).astype(x.dtype)
              for x in noised]
      new_clip = clip
      if q.adaptive:
        count = record_sum[1] + jnp.float32(q.clipped_count_stddev) * jax.random.normal(
            keys[-1], (), jnp.float32)
        unclipped = jnp.clip(count / jnp.float32(q.clients_per_round) + 0.5, 0.0, 1.0)
        new_clip = clip * jnp.exp(-jnp.float32(q.learning_rate)
                                  * (unclipped - jnp.float32(q.target_unclipped_quantile)))
      return jax.tree_util.tree_unflatten(treedef, mean), new_clip, key

    @fedjit.jax_computation(sum_type, FLOAT, KEY, ROUNDS)
    def tree_noised_mean(value_sum, clip, key, rounds):
      # Node (level, index) covers rounds (index-1)·2^level + 1 ... index·2^level;
      # its noise is drawn from the run's key by (level, index, leaf).
      t = rounds + 1  # this round, counted from 1
      low = jnp.bitwise_and(t, -t)
      j = jnp.int32(31) - jax.lax.clz(low)  # t's lowest set bit
      stddev = jnp.float32(q.value_noise_multiplier) * clip
      leaves, treedef = jax.tree_util.tree_flatten(value_sum)

      def node(level, index, leaf, x):
        k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, level), index),
                               leaf)
        return stddev * jax.random.normal(k, x.shape, jnp.float32)

      out = []
      for i, x in enumerate(leaves):
        # N(t) - N(t-1): the nodes above bit j are shared and cancel; t adds
        # node (j, t >> j), and t - 1 had the nodes (k, (t-1) >> k), k < j.
        residual = jax.lax.fori_loop(
            0, j, lambda k, acc, i=i, x=x: acc - node(k, jnp.right_shift(t - 1, k), i, x),
            node(j, jnp.right_shift(t, j), i, x))
        out.append(((x + residual.astype(x.dtype))
                    / jnp.asarray(q.clients_per_round, x.dtype)).astype(x.dtype))
      return jax.tree_util.tree_unflatten(treedef, out), clip, key

    source = ("DifferentiallyPrivateFactory.tree_aggregation" if q.tree else
              "DifferentiallyPrivateFactory.gaussian_adaptive" if q.adaptive else
              "DifferentiallyPrivateFactory.gaussian_fixed")
    for fn in (noised_mean, tree_noised_mean):
      fedjit.core.mark_dp_noise(fn, fedjit.core.DPNoise(
          "gaussian", noise_multiplier=q.noise_multiplier,
          clip=None if q.adaptive else q.initial_clip, source=source, accountant=accountant))

    @fedjit.jax_computation(ROUNDS)
    def next_round(rounds):
      return rounds + 1

    if accountant is not None:
      privacy = privacy_computation(accountant)

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      clip_at_clients = fedjit.federated_broadcast(state.clip)
      records = fedjit.federated_map(client_record, (value, clip_at_clients))
      summed = record_process.next(state.record_agg, records)
      if q.tree:
        mean, new_clip, key = fedjit.federated_map(
            tree_noised_mean, (summed.result, state.clip, state.key, state.rounds))
      else:
        mean, new_clip, key = fedjit.federated_map(noised_mean,
                                                   (summed.result, state.clip, state.key))
      rounds = fedjit.federated_map(next_round, state.rounds)
      metrics = collections.OrderedDict(
          dp_query_metrics=(fedjit.federated_zip(collections.OrderedDict(clip=new_clip))
                            if q.adaptive else _empty()),
          dp=summed.measurements)
      if accountant is not None:
        metrics["privacy"] = fedjit.federated_map(privacy, rounds)
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(
              clip=new_clip, key=key, rounds=rounds, record_agg=summed.state)),
          mean, fedjit.federated_zip(metrics))

    return AggregationProcess(initialize_fn, next_fn)
