"""Simulated Byzantine clients, inside the compiled round: `ByzantineFactory`
wraps any aggregator so that a fraction of each round's clients send an
attack instead of their update, and `flip_labels` poisons chosen clients'
data.

Which clients are Byzantine in a round: each client independently with
probability `fraction`, drawn from the round's key (in the wrapper's state)
and a fingerprint of the client's update, since a client computation has no
index. So the count varies from round to round around `fraction · n`
(reported as `byzantine_count`), and the choice changes every round. For a
fixed set of attacking clients, poison their data with `flip_labels`.

Attacks (what a Byzantine client sends; u is its own update, μ and σ the
mean and standard deviation of the honest clients' updates, coordinate by
coordinate):

* "sign_flip": -scale · u (scale 1 by default);
* "scaling": scale · u (model replacement; scale 100 by default);
* "gaussian": N(0, scale²) noise in every coordinate (scale 1 by default);
* "alie" ("a little is enough", Baruch et al. 2019): μ - z·σ, with z from
  the number of clients n and of Byzantine ones f: s = ⌊n/2 + 1⌋ - f,
  z = Φ⁻¹((n - s) / n) (or `scale` when given);
* "ipm" (inner-product manipulation, Xie et al. 2020): -ε·μ, ε = `scale`
  (0.1 by default; 100 is the other setting of the paper).

The omniscient attacks (alie, ipm) see the honest updates of the round, as
in the papers; all attacks run in the compiled round.
"""

from __future__ import annotations

import collections
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning.aggregators import UnweightedAggregationFactory, WeightedAggregationFactory
from fedjit.learning.aggregators._noise import client_key, split_round_key
from fedjit.learning.aggregators._mean import _with_dtype
from fedjit.learning.templates import AggregationProcess, MeasuredProcessOutput

__all__ = ["ATTACKS", "ByzantineFactory", "flip_labels"]

ATTACKS = {"sign_flip": 1.0, "scaling": 100.0, "gaussian": 1.0, "alie": None, "ipm": 0.1}
KEY = TensorType(np.uint32, [2])
FLOAT = TensorType(np.float32)


def _seed_key(seed: int) -> np.ndarray:
  return np.asarray(jax.random.key_data(jax.random.PRNGKey(int(seed))), np.uint32)


class ByzantineFactory:
  """`inner`, with each round's clients Byzantine with probability
  `fraction`, sending `attack` instead of their update (see the module
  docstring). Weighted if `inner` is; Byzantine clients then also report
  their weight times `weight_multiplier` (an inflated example count buys
  influence in a weighted mean, which is why robust aggregators are
  unweighted).

  Measurements: `OrderedDict(attacked=<inner's measurements>,
  byzantine_count=int32)`; state: `OrderedDict(key=, inner=)`.

  Args:
    inner: the aggregation factory under attack (weighted or unweighted).
    attack: one of `ATTACKS`.
    fraction: the probability that a client is Byzantine, in [0, 1).
    scale: the attack's strength (default per attack, see the module).
    weight_multiplier: factor on Byzantine clients' weights (weighted only).
    seed: the seed of the rounds' keys.

  Example:
    >>> factory = ByzantineFactory(fedjit.aggregators.UnweightedMeanFactory(), "alie",
    ...                            fraction=0.2)
    >>> trainer = build_unweighted_fed_avg(model, client_optimizer_fn, model_aggregator=factory)
  """

  def __new__(cls, inner: Any = None, *args, **kwargs):
    # A weighted factory around a weighted inner one, else unweighted: the
    # builders (build_weighted_fed_avg, ...) check which kind they get.
    if cls is ByzantineFactory:
      cls = (_WeightedByzantine if isinstance(inner, WeightedAggregationFactory)
             else _UnweightedByzantine)
    return super().__new__(cls)

  def __init__(self, inner: Any, attack: str, fraction: float, scale: "float | None" = None,
               weight_multiplier: float = 1.0, seed: int = 0):
    if not isinstance(inner, (UnweightedAggregationFactory, WeightedAggregationFactory)):
      raise TypeError(f"ByzantineFactory wraps an aggregation factory (such as "
                      f"UnweightedMeanFactory() or a robust one), got {inner!r}.")
    if attack not in ATTACKS:
      raise ValueError(f"Unknown attack {attack!r}; expected one of {sorted(ATTACKS)}.")
    for name, value in (("fraction", fraction), ("weight_multiplier", weight_multiplier)):
      if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"ByzantineFactory expects {name} to be a number, got {value!r}.")
    if not 0 <= fraction < 1:
      raise ValueError(f"ByzantineFactory expects fraction in [0, 1), got {fraction}.")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, numbers.Real)):
      raise TypeError(f"ByzantineFactory expects scale to be a number or None, got {scale!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
      raise TypeError(f"ByzantineFactory expects an int seed, got {seed!r}.")
    self._inner, self._attack, self._fraction = inner, attack, float(fraction)
    self._scale = None if scale is None and attack == "alie" else float(
        ATTACKS[attack] if scale is None else scale)
    self._weight_multiplier, self._seed = float(weight_multiplier), int(seed)

  @property
  def is_weighted(self) -> bool:
    return isinstance(self._inner, WeightedAggregationFactory)

  def create(self, value_type: Any, weight_type: Any = None) -> AggregationProcess:
    """The attacked `AggregationProcess` (with `weight_type` when weighted)."""
    value_type = fedjit.to_type(value_type)
    weighted = self.is_weighted
    if weighted:
      weight_type = FLOAT if weight_type is None else fedjit.to_type(weight_type)
      inner = self._inner.create(value_type, weight_type)
    else:
      inner = self._inner.create(value_type)
    attack, fraction, scale = self._attack, self._fraction, self._scale
    key0, multiplier = _seed_key(self._seed), self._weight_multiplier

    @fedjit.jax_computation
    def initial_key():
      return jnp.asarray(key0, jnp.uint32)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip(collections.OrderedDict(
          key=fedjit.federated_eval(initial_key, SERVER), inner=inner.initialize()))

    @fedjit.jax_computation(value_type, KEY)
    def mark(value, round_key):
      key = client_key(round_key, value)
      byzantine = jax.random.uniform(key) < fraction
      honest = 1.0 - byzantine.astype(jnp.float32)
      squares = jax.tree_util.tree_map(lambda x: jnp.square(x.astype(jnp.float32)), value)
      return byzantine.astype(jnp.int32), honest, squares, key

    @fedjit.jax_computation
    def one():
      return jnp.int32(1)

    stats_type = _with_dtype(value_type, np.float32)

    @fedjit.jax_computation(value_type, TensorType(np.int32), KEY, stats_type, stats_type,
                            TensorType(np.int32), TensorType(np.int32))
    def replace(value, byzantine, key, mean, mean_sq, n, f):
      def one_leaf(x, mu, m2, k):
        sigma = jnp.sqrt(jnp.maximum(m2 - jnp.square(mu), 0.0))
        if attack == "sign_flip":
          bad = -scale * x
        elif attack == "scaling":
          bad = scale * x
        elif attack == "gaussian":
          bad = scale * jax.random.normal(k, x.shape, jnp.float32)
        elif attack == "ipm":
          bad = -scale * mu
        else:  # alie
          if scale is None:
            s = jnp.floor(n / 2 + 1) - f
            z = jax.scipy.special.ndtri(jnp.clip((n - s) / n, 1e-6, 1 - 1e-6))
          else:
            z = jnp.float32(scale)
          bad = mu - z * sigma
        return jnp.where(byzantine > 0, bad.astype(x.dtype), x)
      leaves, treedef = jax.tree_util.tree_flatten(value)
      keys = jax.random.split(key, len(leaves))
      out = [one_leaf(x, mu, m2, k) for x, mu, m2, k in zip(
          leaves, jax.tree_util.tree_leaves(mean), jax.tree_util.tree_leaves(mean_sq), keys)]
      return jax.tree_util.tree_unflatten(treedef, out)

    if weighted:
      @fedjit.jax_computation(weight_type, TensorType(np.int32))
      def inflate(weight, byzantine):
        return jnp.where(byzantine > 0, weight * jnp.asarray(multiplier, weight.dtype), weight)

    def attacked(state, value):
      key, round_key = fedjit.federated_map(split_round_key, state.key)
      byzantine, honest, squares, client_key = fedjit.federated_map(
          mark, (value, fedjit.federated_broadcast(round_key)))
      # The honest clients' statistics, which the omniscient attacks see
      # (0 when no client is honest).
      honest_sum = fedjit.federated_sum(honest)
      mean = fedjit.federated_map(_divide(stats_type), (fedjit.federated_sum(
          fedjit.federated_map(_times(value_type), (value, honest))), honest_sum))
      mean_sq = fedjit.federated_map(_divide(stats_type), (fedjit.federated_sum(
          fedjit.federated_map(_times(stats_type), (squares, honest))), honest_sum))
      n = fedjit.federated_sum(fedjit.federated_eval(one, CLIENTS))
      f = fedjit.federated_sum(byzantine)
      sent = fedjit.federated_map(replace, (
          value, byzantine, client_key, fedjit.federated_broadcast(mean),
          fedjit.federated_broadcast(mean_sq), fedjit.federated_broadcast(n),
          fedjit.federated_broadcast(f)))
      return key, byzantine, sent, f

    if weighted:
      @fedjit.federated_computation(initialize_fn.type_signature.result,
                                    FederatedType(value_type, CLIENTS),
                                    FederatedType(weight_type, CLIENTS))
      def next_fn(state, value, weight):
        key, byzantine, sent, f = attacked(state, value)
        out = inner.next(state.inner, sent, fedjit.federated_map(inflate, (weight, byzantine)))
        return _output(key, out, f)
    else:
      @fedjit.federated_computation(initialize_fn.type_signature.result,
                                    FederatedType(value_type, CLIENTS))
      def next_fn(state, value):
        key, byzantine, sent, f = attacked(state, value)
        return _output(key, inner.next(state.inner, sent), f)

    return AggregationProcess(initialize_fn, next_fn)


class _WeightedByzantine(ByzantineFactory, WeightedAggregationFactory):
  """A `ByzantineFactory` around a weighted factory (a weighted factory itself)."""


class _UnweightedByzantine(ByzantineFactory, UnweightedAggregationFactory):
  """A `ByzantineFactory` around an unweighted factory."""


def _output(key, out, f):
  return MeasuredProcessOutput(
      fedjit.federated_zip(collections.OrderedDict(key=key, inner=out.state)), out.result,
      fedjit.federated_zip(collections.OrderedDict(attacked=out.measurements,
                                                   byzantine_count=f)))


def _times(t):
  @fedjit.jax_computation(t, FLOAT)
  def times(value, w):
    return jax.tree_util.tree_map(lambda x: x.astype(jnp.float32) * w, value)
  return times


def _divide(t):
  @fedjit.jax_computation(t, FLOAT)
  def divide(total, w):
    return jax.tree_util.tree_map(lambda x: jnp.where(w > 0, x / jnp.maximum(w, 1e-30), 0.0),
                                  total)
  return divide


def flip_labels(client_data: Any, byzantine_ids: "list", num_classes: int) -> Any:
  """`client_data` with the labels of `byzantine_ids`' data flipped,
  y -> num_classes - 1 - y (a data-poisoning attack; the same clients in
  every round). Elements (examples or batches) are `(x, y)` pairs or dicts
  with a "y" or "label" key.

  Example:
    >>> poisoned = flip_labels(train, train.client_ids[:10], num_classes=10)
    >>> run_training(trainer, poisoned, rounds=50, clients_per_round=20)
  """
  from fedjit.simulation import ClientData, Dataset
  bad = set(byzantine_ids)
  unknown = bad - set(client_data.client_ids)
  if unknown:
    raise KeyError(f"flip_labels: {len(unknown)} id(s) not in the client data, e.g. "
                   f"{sorted(map(str, unknown))[0]!r}.")
  if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or (
      num_classes < 2):
    raise ValueError(f"flip_labels expects num_classes >= 2, got {num_classes!r}.")

  def flip(element):
    # Works on a batch or on one example, and on arrays or JAX tracers.
    if isinstance(element, dict):
      name = "y" if "y" in element else "label" if "label" in element else None
      if name is None:
        raise TypeError(f"flip_labels: a dict element needs a 'y' or 'label' key, got "
                        f"{sorted(element)}.")
      return {**element, name: num_classes - 1 - element[name]}
    x, y = element
    return x, num_classes - 1 - y

  def dataset(cid):
    data = client_data.create_dataset_for_client(cid)
    if cid not in bad:
      return data
    if isinstance(data, Dataset):
      return data.map(flip)
    return [flip(b) for b in data]  # a list of batches
  return ClientData.from_clients_and_fn(list(client_data.client_ids), dataset)
