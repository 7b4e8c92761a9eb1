"""Distributed differential privacy with secure aggregation
(`DistributedDpSumFactory`, TFF's `tff.aggregators.DistributedDpSumFactory`
with the distributed Skellam mechanism of Agarwal, Kairouz and Liu, 2021).

Each client clips its value, rotates it (a random rotation whose seed the
server shares), scales and rounds it to integers, adds its own share of
Skellam noise and reduces it modulo 2**bits; a secure modular sum adds the
shares, so the server sees only the noised sum. No party adds all the noise
and no party, the server included, sees an un-noised value.

In simulation the secure modular sum is the exact modular sum, and each
client's noise key is derived from the round's key (which the server holds)
and a fingerprint of the client's value, since a client computation has no
client index (two clients with bit-identical values draw the same noise).
A deployment must seed each device's noise from the device's own CSPRNG,
never from a key the server knows: otherwise the server could recompute the
noise and the guarantee is gone.
"""

from __future__ import annotations

import collections
import math
import numbers
import statistics
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning.aggregators._accounting import PrivacyAccountant
from fedjit.learning.aggregators._compression import _flatten, _unflatten, hadamard
from fedjit.learning.aggregators._local_dp import value_fingerprint
from fedjit.learning.aggregators._mean import (UnweightedAggregationFactory, _check_value_type,
                                               _tensor_leaves)
from fedjit.learning.aggregators._noise import _initial_key, _number, privacy_computation
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput
from fedjit.learning.templates._stages import zeros_of

__all__ = ["DistributedDpSumFactory"]

KEY = TensorType(np.uint32, [2])
ROUNDS = TensorType(np.int32)

MECHANISMS = ("distributed_skellam",)
ROTATIONS = ("hd", "dft")
# TFF caps the scale: larger ones only risk int32 overflows.
MAX_SCALE_FACTOR = 1e6
# The largest Poisson rate drawn at once. jax.random.poisson computes in the
# rate's float32 and loses accuracy for large rates (measured with 10**6
# draws: variance 0.6-0.9% low at 2**17, 3.4% low at 7.5e5; within sampling
# error at 2**16). Larger rates are drawn as sums of draws of at most 2**15
# (Poisson rates add, so the distribution is exact); the cost grows by one
# Poisson draw per coordinate for every 2**15 of rate.
POISSON_CHUNK = 2.0 ** 15
# Conditional rounding (beta > 0) redraws at most this often (as TFF).
MAX_ROUNDING_TRIES = 1000


def _num_stddevs(modclip_prob: float) -> float:
  """k with P(|N(0, 1)| > k) = modclip_prob (TFF's `_clip_prob_to_num_stddevs`)."""
  return statistics.NormalDist().inv_cdf(1.0 - modclip_prob / 2.0)


def _heuristic_scale(local_stddev: float, l2_clip: float, bits: int, n: int, dim: int,
                     k: float) -> float:
  """TFF's scale: k stddevs of the (subgaussian) noisy scaled sum fit in
  2**bits, solving 2^b = 2k·sqrt(c²n²/d + (γ²/4 + σ²)·n)/γ for s = 1/γ."""
  numer = math.sqrt(2.0 ** (2 * bits) - n * k ** 2)
  denom = 2.0 * k * math.sqrt(l2_clip ** 2 * n ** 2 / dim + n * local_stddev ** 2)
  return numer / denom if denom > 0 else math.inf


def inflated_l2_norm_bound(l2_norm_bound: float, gamma: float, beta: float, dim: int) -> float:
  """The ℓ2 norm bound of a vector of norm ≤ `l2_norm_bound` after
  (conditional, for `beta` > 0) randomized rounding to the grid γ·ℤ^dim
  (Kairouz, Liu and Steinke 2021, Theorem 1; TFF's
  `discretization.inflated_l2_norm_bound`).

  Example:
    >>> inflated_l2_norm_bound(1.0, 0.01, 0.0, 100)   # 1 + γ·√d
    1.1
  """
  gamma_sqrt_dim = math.sqrt(dim) * gamma
  bound_1 = l2_norm_bound + gamma_sqrt_dim
  if beta == 0:
    return bound_1
  beta_term = math.sqrt(2.0 * math.log(1.0 / beta))
  bound_2 = math.sqrt(l2_norm_bound ** 2 + 0.25 * gamma_sqrt_dim ** 2
                      + beta_term * gamma * (l2_norm_bound + 0.5 * gamma_sqrt_dim))
  return min(bound_1, bound_2)


def skellam_noise(key: jax.Array, variance: float, shape: tuple) -> jax.Array:
  """Symmetric Skellam noise, int32: Poisson(μ/2) − Poisson(μ/2) per
  coordinate, variance μ = `variance` (a Python float), from
  `jax.random.poisson`. A rate above `POISSON_CHUNK` (2**15) is drawn as a
  sum of equal smaller rates, which is the same distribution (and costs
  one draw per coordinate for each 2**15 of rate).

  Example:
    >>> noise = skellam_noise(jax.random.PRNGKey(0), 100.0, (10_000,))
    >>> 90 < float(jnp.var(noise.astype(jnp.float32))) < 110
    True
  """
  zeros = jnp.zeros(shape, jnp.int32)
  rate = float(variance) / 2.0
  if rate == 0:
    return zeros
  draws = max(1, math.ceil(rate / POISSON_CHUNK))
  each = jnp.float32(rate / draws)

  def draw(i, total):
    k1, k2 = jax.random.split(jax.random.fold_in(key, i))
    return (total + jax.random.poisson(k1, each, shape, jnp.int32)
            - jax.random.poisson(k2, each, shape, jnp.int32))
  if draws == 1:
    return draw(0, zeros)
  return jax.lax.fori_loop(0, draws, draw, zeros)


def to_field(values: jax.Array, bits: int) -> jax.Array:
  """Integers modulo 2**bits, in [0, 2**bits): what a client sends to the
  secure modular sum. The same residue as the modular clip into
  [-2**(bits-1), 2**(bits-1)).

  Example:
    >>> to_field(jnp.array([-1, 5, 9]), 3).tolist()
    [7, 5, 1]
  """
  return jnp.mod(values, jnp.asarray(2 ** bits, values.dtype))


def from_field(total: jax.Array, bits: int) -> jax.Array:
  """A modular sum in [0, 2**bits) back to the signed integer in
  [-2**(bits-1), 2**(bits-1)) with the same residue: exact whenever the
  true sum lies in that range.

  Example:
    >>> from_field(jnp.array([7, 5, 1]), 3).tolist()
    [-1, -3, 1]
  """
  m = jnp.asarray(2 ** bits, total.dtype)
  total = jnp.mod(total, m)
  return total - m * (total >= m // 2).astype(total.dtype)


def _check_int(owner: str, name: str, value: Any, low: int, high: float) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"{owner} expects {name} to be an int, got {value!r}.")
  if not low <= value <= high:
    raise ValueError(f"{owner} expects {name} in [{low}, {high}], got {value}.")
  return int(value)


class DistributedDpSumFactory(UnweightedAggregationFactory):
  """The SUM of client values under distributed DP with secure aggregation
  (TFF's `DistributedDpSumFactory`, mechanism "distributed_skellam").

  Per client: clip to ℓ2 norm `l2_clip`; flatten and pad; rotate (random
  signs from the round's key, which the server shares, then the orthonormal
  Walsh-Hadamard transform for "hd" or a complex DFT for "dft"); multiply
  by TFF's heuristic scale s (k standard deviations of the noisy sum fit in
  2**bits, k from `modclip_prob`; at most 1e6); round randomly to integers
  (conditionally, redrawing while the norm exceeds the inflated bound, for
  `beta` > 0); add Skellam noise of variance (s·σ_local)² with σ_local =
  noise_multiplier · l2_clip / sqrt(expected_clients_per_round); reduce
  modulo 2**bits. `fedjit.federated_secure_modular_sum` adds the clients'
  integers; the server maps the sum back to signed integers, divides by s
  and undoes the rotation. The n clients' noises add up to variance
  (s · noise_multiplier · l2_clip)² when n = expected_clients_per_round
  (fewer clients: less noise).

  Like TFF's, this is a sum factory: for a mean, compose it as
  `UnweightedMeanFactory(value_sum_factory=DistributedDpSumFactory(...))`
  (or `MeanFactory(value_sum_factory=...)`, which sums weighted values).

  Privacy accounting (`accountant=`). dp-accounting has no Skellam
  mechanism (and TFF does none for this factory). fedjit accounts with the
  Gaussian mechanism of the same total variance: noise multiplier
  noise_multiplier · l2_clip / inflated_l2, where inflated_l2 is the
  sensitivity after rounding (measurement `scaled_inflated_l2` / s), for
  `expected_clients_per_round` clients per round. This is the Gaussian
  approximation of the distributed Skellam mechanism: it is tight only when
  the scale (and so the Skellam variance) is large, as Agarwal et al. (2021)
  show; with a small scale the true ε is larger. The bound accountant is
  `factory.accountant`, and measurements hold `privacy=OrderedDict(rounds=,
  epsilon=, delta=)`.

  Not supported (yet): TFF's "distributed_dgauss" mechanism and adaptive
  clipping (`auto_l2_clip` and its arguments are not accepted); integer
  values (TFF casts them to float; here value types must be float).

  State: `OrderedDict(key=uint32[2], rounds=int32)`. Measurements (TFF's
  names): `l2_clip`, `scale_factor`, `scaled_inflated_l2`,
  `scaled_local_stddev`, `actual_num_clients` (by a secure sum),
  `padded_dim`, `dp_query_metrics=OrderedDict(effective_noise_multiplier=)`
  (the multiplier the accountant uses), and with an accountant `privacy`.

  Args:
    noise_multiplier: central noise stddev / l2_clip, ≥ 0.
    expected_clients_per_round: n, a positive int; each client adds the
      share 1/n of the noise variance.
    bits: the secure sum's bit width, an int in [1, 22]; at least
      log2(n), with 2**(2·bits) ≥ n·k².
    l2_clip: the ℓ2 clip, > 0.
    modclip_prob: target probability that the sum wraps around, in (0, 1)
      (TFF's default 1e-4).
    beta: conditional rounding bias in [0, 1) (TFF's default 0,
      unconditional rounding; exp(-0.5) is its recommended value otherwise).
    mechanism: "distributed_skellam".
    rotation_type: "dft" (TFF's default; pads to an even length) or "hd"
      (pads to a power of two).
    noise_seed: None (the first key from the OS CSPRNG) or an int, for
      reproducible simulation.
    accountant: a `PrivacyAccountant(population_size, delta, sampling)`
      ("without_replacement" or "poisson"), or None.

  Raises:
    TypeError: an argument of the wrong type; a value type that is not float.
    ValueError: an argument out of range, or bits too few for n and
      modclip_prob (the message says what to change).

  Example:
    >>> ddp = fedjit.aggregators.DistributedDpSumFactory(
    ...     noise_multiplier=1.0, expected_clients_per_round=100, bits=20, l2_clip=0.1)
    >>> trainer = build_unweighted_fed_avg(
    ...     model, client_optimizer_fn,
    ...     model_aggregator=fedjit.aggregators.UnweightedMeanFactory(value_sum_factory=ddp))
  """

  def __init__(self, noise_multiplier: float, expected_clients_per_round: int, bits: int,
               l2_clip: float, modclip_prob: float = 1e-4, beta: float = 0.0,
               mechanism: str = "distributed_skellam", rotation_type: str = "dft", *,
               noise_seed: "int | None" = None,
               accountant: "PrivacyAccountant | None" = None):
    owner = "DistributedDpSumFactory"
    self._sigma = _number(owner, "noise_multiplier", noise_multiplier)
    self._n = _check_int(owner, "expected_clients_per_round", expected_clients_per_round, 1,
                         math.inf)
    # As TFF: values go through float32, which holds integers up to 2**24 exactly.
    self._bits = _check_int(owner, "bits", bits, 1, 22)
    self._clip = _number(owner, "l2_clip", l2_clip, positive=True)
    self._modclip_prob = _number(owner, "modclip_prob", modclip_prob, probability=True)
    if not 0 < self._modclip_prob < 1:
      raise ValueError(f"{owner} expects modclip_prob in (0, 1) exclusive, such as 1e-4, got "
                       f"{modclip_prob}.")
    self._beta = _number(owner, "beta", beta, probability=True)
    if self._beta >= 1:
      raise ValueError(f"{owner} expects beta in [0, 1), such as 0 or exp(-0.5), got {beta}.")
    for name, value, options in (("mechanism", mechanism, MECHANISMS),
                                 ("rotation_type", rotation_type, ROTATIONS)):
      if not isinstance(value, str):
        raise TypeError(f"{owner} expects {name} to be one of {options}, got {value!r}.")
      if value not in options:
        extra = (" (the distributed discrete Gaussian is not supported yet)"
                 if value == "distributed_dgauss" else "")
        raise ValueError(f"{owner} expects {name} to be one of {options}, got "
                         f"{value!r}{extra}.")
    self._mechanism, self._rotation = mechanism, rotation_type
    self._k = _num_stddevs(self._modclip_prob)
    if self._bits < math.log2(self._n):
      raise ValueError(f"{owner}: bits should be >= log2(expected_clients_per_round); got "
                       f"2**{self._bits} < {self._n}. Increase bits.")
    if 2 ** (2 * self._bits) < self._n * self._k ** 2:
      raise ValueError(
          f"{owner}: bits={self._bits} is too small for expected_clients_per_round="
          f"{self._n} and modclip_prob={modclip_prob}. Decrease expected_clients_per_round, "
          f"increase bits, or increase modclip_prob.")
    _initial_key(noise_seed)  # checks it
    self._noise_seed = noise_seed
    if accountant is not None and (not isinstance(accountant, PrivacyAccountant)
                                   or accountant.sampling == "local"):
      raise ValueError(
          f"{owner} expects accountant to be a PrivacyAccountant with sampling "
          f"'without_replacement' or 'poisson' (the guarantee is on the noised sum, as for "
          f"central DP); got {accountant!r}.")
    self._accountant_arg = accountant
    self._accountant = None
    if accountant is not None:
      # The accountant's σ depends on the padded dimension only through the
      # rounding's inflation; bind it for the worst case of one coordinate
      # now, and rebind exactly in `create` (see `accountant`).
      self._accountant = accountant.bind(self._parameters(1)["effective_noise_multiplier"],
                                         self._n)

  def _parameters(self, dim: int) -> dict:
    """TFF's derived constants for a client vector of `dim` coordinates."""
    if self._rotation == "hd":
      padded = 1 << max(dim - 1, 0).bit_length()
    else:
      padded = 2 * math.ceil(dim / 2)
    local_stddev = self._sigma * self._clip / math.sqrt(self._n)
    scale = min(_heuristic_scale(local_stddev, self._clip, self._bits, self._n, padded,
                                 self._k), MAX_SCALE_FACTOR)
    inflated = inflated_l2_norm_bound(self._clip, 1.0 / scale, self._beta, padded)
    # TFF's leeway for float32 arithmetic: the bound used for privacy.
    scaled_inflated = (inflated + 1e-5) * scale
    return dict(padded_dim=padded, scale=scale, scaled_local_stddev=local_stddev * scale,
                threshold=inflated * scale, scaled_inflated_l2=scaled_inflated,
                effective_noise_multiplier=self._sigma * self._clip * scale / scaled_inflated)

  @property
  def accountant(self) -> "PrivacyAccountant | None":
    """The `PrivacyAccountant` bound to the Gaussian approximation's noise
    multiplier (None if none was given). Before `create` it assumes one
    coordinate; `create(value_type)` rebinds it for the value's dimension
    (the rounding's inflation, and so σ, depends on it).

    Example:
      >>> factory.create(value_type); factory.accountant.epsilon(100)
    """
    return self._accountant

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` computing the distributed-DP noised sum of
    float `value_type` values."""
    value_type = _check_value_type("DistributedDpSumFactory", value_type)
    d = sum(int(np.prod(t.shape)) for t in _tensor_leaves(value_type))
    p = self._parameters(max(1, d))
    padded, scale = p["padded_dim"], p["scale"]
    if scale <= 1:
      warnings.warn(f"DistributedDpSumFactory: the scale factor {scale:g} is <= 1, so "
                    f"rounding errors may be large. Increase bits (now {self._bits}) or "
                    f"decrease expected_clients_per_round (now {self._n}).", stacklevel=2)
    bits, beta, clip = self._bits, self._beta, self._clip
    variance = p["scaled_local_stddev"] ** 2
    threshold = p["threshold"]
    rotation = self._rotation
    key0 = _initial_key(self._noise_seed)
    accountant = None
    if self._accountant_arg is not None:
      accountant = self._accountant_arg.bind(p["effective_noise_multiplier"], self._n)
      self._accountant = accountant
    field = TensorType(np.int32, [padded])

    def signs(round_key):
      return jnp.where(jax.random.bernoulli(jax.random.fold_in(round_key, 0), 0.5, (padded,)),
                       1.0, -1.0).astype(jnp.float32)

    def rotate(x, round_key):
      x = x * signs(round_key)
      if rotation == "hd":
        return hadamard(x)
      half = padded // 2
      z = jnp.fft.fft(x[:half] + 1j * x[half:], norm="ortho")
      return jnp.concatenate([jnp.real(z), jnp.imag(z)]).astype(jnp.float32)

    def unrotate(x, round_key):
      if rotation == "hd":
        x = hadamard(x)
      else:
        half = padded // 2
        z = jnp.fft.ifft(x[:half] + 1j * x[half:], norm="ortho")
        x = jnp.concatenate([jnp.real(z), jnp.imag(z)]).astype(jnp.float32)
      return x * signs(round_key)

    def randomized_round(key, x):
      floor = jnp.floor(x)
      frac = x - floor

      def attempt(i):
        return floor + (jax.random.uniform(jax.random.fold_in(key, i), x.shape) < frac)
      if beta == 0:  # unconditional: the norm grows by at most √padded, always
        return attempt(0)

      def too_long(carry):
        tries, r = carry
        return (tries < MAX_ROUNDING_TRIES) & (jnp.linalg.norm(r) > threshold)

      def redraw(carry):
        tries, _ = carry
        return tries + 1, attempt(tries)
      _, r = jax.lax.while_loop(too_long, redraw, (jnp.int32(1), attempt(0)))
      # After MAX_ROUNDING_TRIES failures (TFF raises), the client sends zero,
      # which keeps the sensitivity bound.
      return jnp.where(jnp.linalg.norm(r) <= threshold, r, 0.0)

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
    def encode(value, round_key):
      x = _flatten(value)
      x = x * (jnp.float32(clip) / jnp.maximum(jnp.linalg.norm(x), jnp.float32(clip)))
      x = rotate(jnp.pad(x, (0, padded - d)), round_key) * jnp.float32(scale)
      client_key = jax.random.fold_in(jax.random.fold_in(round_key, 1),
                                      value_fingerprint(value))
      round_key_, noise_key = jax.random.split(client_key)
      q = jnp.clip(randomized_round(round_key_, x), -2.0 ** 30, 2.0 ** 30).astype(jnp.int32)
      return to_field(q + skellam_noise(noise_key, variance, (padded,)), bits)

    fedjit.core.mark_dp_noise(encode, fedjit.core.DPNoise(
        "skellam", noise_multiplier=self._sigma, clip=clip, source="DistributedDpSumFactory",
        accountant=accountant))

    @fedjit.jax_computation(field, KEY)
    def decode(total, round_key):
      x = from_field(total, bits).astype(jnp.float32) / jnp.float32(scale)
      return _unflatten(zeros_of(value_type), unrotate(x, round_key)[:d])

    @fedjit.jax_computation
    def one():
      return jnp.int32(1)

    @fedjit.jax_computation
    def constants():
      return collections.OrderedDict(
          l2_clip=jnp.float32(clip), scale_factor=jnp.float32(scale),
          scaled_inflated_l2=jnp.float32(p["scaled_inflated_l2"]),
          scaled_local_stddev=jnp.float32(p["scaled_local_stddev"]),
          padded_dim=jnp.int32(padded),
          effective_noise_multiplier=jnp.float32(p["effective_noise_multiplier"]))

    if accountant is not None:
      privacy = privacy_computation(accountant)

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      key, round_key, rounds = fedjit.federated_map(advance, (state.key, state.rounds))
      sent = fedjit.federated_map(encode, (value, fedjit.federated_broadcast(round_key)))
      total = fedjit.federated_secure_modular_sum(sent, 2 ** bits)
      result = fedjit.federated_map(decode, (total, round_key))
      c = fedjit.federated_eval(constants, SERVER)
      metrics = collections.OrderedDict(
          l2_clip=c.l2_clip, scale_factor=c.scale_factor,
          scaled_inflated_l2=c.scaled_inflated_l2, scaled_local_stddev=c.scaled_local_stddev,
          actual_num_clients=fedjit.federated_secure_sum_bitwidth(
              fedjit.federated_eval(one, CLIENTS), 1),
          padded_dim=c.padded_dim,
          dp_query_metrics=fedjit.federated_zip(collections.OrderedDict(
              effective_noise_multiplier=c.effective_noise_multiplier)))
      if accountant is not None:
        metrics["privacy"] = fedjit.federated_map(privacy, rounds)
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(key=key, rounds=rounds)),
          result, fedjit.federated_zip(metrics))

    return AggregationProcess(initialize_fn, next_fn)
