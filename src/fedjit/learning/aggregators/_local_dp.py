"""Local differential privacy: each client clips its value and adds Gaussian
noise before it leaves the client (`LocalGaussianFactory`, also
`DifferentiallyPrivateFactory.local_gaussian`), so the server, and everyone
else, sees only noised values.

Each client's noise comes from its own JAX key: the round's key (split from
the key in the aggregator's state, so a run is reproducible) folded with a
32-bit fingerprint of the client's clipped value, since a client computation
has no client index. Two clients with bit-identical values draw the same
noise. A deployment must instead seed each device's noise from its operating
system's CSPRNG (`secrets`), never from a key the server knows.
"""

from __future__ import annotations

import collections
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning.aggregators._accounting import PrivacyAccountant
from fedjit.learning.aggregators._noise import (  # noqa: F401  (value_fingerprint re-exported)
    _global_l2_norm, _initial_key, _number, client_key, privacy_computation, value_fingerprint)
from fedjit.learning.aggregators._mean import UnweightedAggregationFactory, _check_value_type
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput

__all__ = ["LocalGaussianFactory"]

FLOAT = TensorType(np.float32)
ROUNDS = TensorType(np.int32)
KEY = TensorType(np.uint32, [2])


class LocalGaussianFactory(UnweightedAggregationFactory):
  """The mean of client values noised on the clients (local DP).

  Each client clips its value to ℓ2 norm `clip` (`v · C / max(‖v‖, C)`)
  and adds N(0, (noise_multiplier · clip)²) noise to every coordinate; the
  server averages the noised values. Each client's release is a Gaussian
  mechanism on its own value: with `accountant=PrivacyAccountant(...,
  sampling="local")` every round reports the ε each client has after the
  rounds it took part in (counted here as every round, the worst case).
  Local DP needs much more noise than central DP for the same accuracy:
  the mean's noise falls only as 1/√n.

  State: `OrderedDict(key=uint32[2], rounds=int32)`; measurements:
  `OrderedDict(clip=, noise_multiplier=, clipped_count=)` and, with an
  accountant, `privacy=OrderedDict(rounds=, epsilon=, delta=)`.

  Args:
    noise_multiplier: σ ≥ 0.
    clip: the ℓ2 clip C > 0.
    noise_seed: None (the first key from the OS CSPRNG) or an int, for
      reproducible simulation.
    accountant: a `PrivacyAccountant(population_size, delta,
      sampling="local")`, or None.

  Raises:
    ValueError: a negative noise multiplier, a clip that is not positive, or
      an accountant whose sampling is not "local".

  Example:
    >>> factory = fedjit.aggregators.DifferentiallyPrivateFactory.local_gaussian(
    ...     noise_multiplier=1.0, clip=0.5, noise_seed=0)
    >>> trainer = build_unweighted_fed_avg(model, client_optimizer_fn, model_aggregator=factory)
  """

  def __init__(self, noise_multiplier: float, clip: float, *, noise_seed: "int | None" = None,
               accountant: "PrivacyAccountant | None" = None):
    owner = "DifferentiallyPrivateFactory.local_gaussian"
    self._sigma = _number(owner, "noise_multiplier", noise_multiplier)
    self._clip = _number(owner, "clip", clip, positive=True)
    _initial_key(noise_seed)  # checks it
    self._noise_seed = noise_seed
    if accountant is not None:
      if not isinstance(accountant, PrivacyAccountant) or accountant.sampling != "local":
        raise ValueError(
            f"{owner} is local DP: its accountant must be a PrivacyAccountant with "
            f"sampling='local' (each client's own guarantee, no amplification by "
            f"sampling); got {accountant!r}.")
      accountant = accountant.bind(self._sigma, accountant.clients_per_round or 1)
    self._accountant = accountant

  @property
  def accountant(self) -> "PrivacyAccountant | None":
    """The `PrivacyAccountant` (None if none was given)."""
    return self._accountant

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` computing the mean of locally noised values."""
    value_type = _check_value_type("LocalGaussianFactory", value_type)
    sigma, clip = self._sigma, self._clip
    key0 = _initial_key(self._noise_seed)
    accountant = self._accountant

    @fedjit.jax_computation
    def initial_state():
      return collections.OrderedDict(key=jnp.asarray(key0, jnp.uint32), rounds=jnp.int32(0))

    @fedjit.federated_computation
    def initialize_fn():
      s = fedjit.federated_eval(initial_state, SERVER)
      return fedjit.federated_zip(collections.OrderedDict(key=s.key, rounds=s.rounds))

    @fedjit.jax_computation(KEY, ROUNDS)
    def advance(key, rounds):
      key, use = jax.random.split(key)
      return key, use, rounds + 1

    @fedjit.jax_computation(value_type, KEY)
    def noise(value, round_key):
      norm = _global_l2_norm(value)
      scale = jnp.float32(clip) / jnp.maximum(norm, jnp.float32(clip))
      clipped = jax.tree_util.tree_map(lambda x: (x * scale).astype(x.dtype), value)
      key = client_key(round_key, clipped)
      leaves, treedef = jax.tree_util.tree_flatten(clipped)
      keys = jax.random.split(key, len(leaves))
      stddev = jnp.float32(sigma * clip)
      noised = [x + (stddev * jax.random.normal(k, x.shape, jnp.float32)).astype(x.dtype)
                for x, k in zip(leaves, keys)]
      return jax.tree_util.tree_unflatten(treedef, noised), (norm > clip).astype(jnp.int32)

    fedjit.core.mark_dp_noise(noise, fedjit.core.DPNoise(
        "gaussian", noise_multiplier=sigma, clip=clip, source="LocalGaussianFactory",
        accountant=accountant, output=0))

    @fedjit.jax_computation
    def constants():
      return jnp.float32(clip), jnp.float32(sigma)

    if accountant is not None:
      privacy = privacy_computation(accountant)

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      key, round_key, rounds = fedjit.federated_map(advance, (state.key, state.rounds))
      noised, clipped = fedjit.federated_map(
          noise, (value, fedjit.federated_broadcast(round_key)))
      mean = fedjit.federated_mean(noised)
      c, s = fedjit.federated_eval(constants, SERVER)
      metrics = collections.OrderedDict(clip=c, noise_multiplier=s,
                                        clipped_count=fedjit.federated_sum(clipped))
      if accountant is not None:
        metrics["privacy"] = fedjit.federated_map(privacy, rounds)
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(key=key, rounds=rounds)),
          mean, fedjit.federated_zip(metrics))

    return AggregationProcess(initialize_fn, next_fn)
