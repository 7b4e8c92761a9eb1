"""Secure summation factories (TFF's `tff.aggregators.SecureSumFactory` and
`SecureModularSumFactory`): values are clipped to known bounds, shifted (and,
for floats, quantized) to non-negative integers, summed with
`federated_secure_sum_bitwidth` / `federated_secure_modular_sum`, and mapped
back on the server.

In simulation the secure sum is the exact (modular) sum it computes; the
cryptographic protocol comes with the deployment runtime. What the server
may learn is only the sum: `fedjit.privacy_report` shows these flows as
"secure sum".
"""

from __future__ import annotations

import collections
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType, to_type
from fedjit.learning.aggregators._mean import (UnweightedAggregationFactory, _tensor_leaves,
                                               _with_dtype)
from fedjit.learning.aggregators._quantile import _check_norm_process
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput
from fedjit.templates import EstimationProcess

__all__ = ["SecureModularSumFactory", "SecureSumFactory"]

INT = TensorType(np.int32)


def _value_type(factory: str, value_type: Any, kind: str):
  """`value_type` as a fedjit type of one dtype of `kind` ("integer" or "floating")."""
  try:
    t = to_type(value_type)
  except (TypeError, ValueError) as e:
    raise TypeError(f"{factory}.create expects a tensor type or a structure of them, got "
                    f"{value_type!r}.") from e
  leaves = None if isinstance(t, FederatedType) else _tensor_leaves(t)
  dtypes = None if leaves is None else [np.dtype(l.dtype) for l in leaves]
  if not dtypes:
    raise TypeError(f"{factory}.create expects the type of one client's value (tensors or a "
                    f"structure of them, unplaced), got {t}.")
  if len(set(dtypes)) != 1:
    raise TypeError(f"{factory} expects a type whose tensors all have one dtype (as TFF's), "
                    f"got {t}.")
  wanted = np.integer if kind == "integer" else np.floating
  if not np.issubdtype(dtypes[0], wanted):
    raise TypeError(f"{factory} was configured for {kind} values (by the type of its bounds), "
                    f"so every tensor of value_type must be {kind}; got {t}.")
  return t, dtypes[0]


def _is_int(x) -> bool:
  return isinstance(x, (numbers.Integral, np.integer)) and not isinstance(x, bool)


def _is_float(x) -> bool:
  return isinstance(x, (float, np.floating))


class SecureModularSumFactory(UnweightedAggregationFactory):
  """`(Σᵢ vᵢ) mod modulus` of integer client values, by
  `federated_secure_modular_sum` (TFF's `SecureModularSumFactory`).

  With `symmetric_range=True` values and the result lie in
  `[-(modulus-1), modulus-1]`: the sum is taken modulo `2·modulus - 1` and
  mapped back into that range (TFF's semantics).

  Example:
    >>> process = SecureModularSumFactory(4).create(fedjit.TensorType(np.int32))
    >>> process.next(process.initialize(), [1, 3, 6]).result   # (1 + 3 + 2) mod 4
    np.int32(2)
  """

  def __init__(self, modulus: int, symmetric_range: bool = False):
    if not _is_int(modulus):
      raise TypeError(f"SecureModularSumFactory expects an integer modulus, got {modulus!r}.")
    if modulus <= 0:
      raise ValueError(f"Provided modulus must be positive, but found: {modulus}")
    if not isinstance(symmetric_range, bool):
      raise TypeError(f"symmetric_range must be True or False, got {symmetric_range!r}.")
    self._modulus = int(modulus)
    self._symmetric = symmetric_range

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` for integer `value_type` client values."""
    t, _ = _value_type("SecureModularSumFactory", value_type, "integer")
    m = self._modulus
    symmetric = self._symmetric

    @fedjit.jax_computation(t)
    def unshift(total):
      # The sum of values in [-(m-1), m-1] taken mod 2m-1 lies in [0, 2m-2];
      # values >= m stand for negative ones.
      return jax.tree_util.tree_map(lambda v: v - (2 * m - 1) * (v >= m).astype(v.dtype), total)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_value((), SERVER)

    @fedjit.federated_computation(initialize_fn.type_signature.result, FederatedType(t, CLIENTS))
    def next_fn(state, value):
      if symmetric:
        total = fedjit.federated_map(unshift, fedjit.federated_secure_modular_sum(
            value, 2 * m - 1))
      else:
        total = fedjit.federated_secure_modular_sum(value, m)
      return MeasuredProcessOutput(state, total, fedjit.federated_value((), SERVER))

    return AggregationProcess(initialize_fn, next_fn)


class SecureSumFactory(UnweightedAggregationFactory):
  """The sum of client values by `federated_secure_sum_bitwidth`, after
  clipping them to `[lower_bound_threshold, upper_bound_threshold]` (TFF's
  `SecureSumFactory`).

  Integer bounds (for integer values): values are clipped, shifted by the
  lower bound into `[0, upper - lower]` and summed with a bit width of
  `ceil(log2(upper - lower + 1))`; the server adds `n · lower` back, so the
  sum is exact for values within the bounds.

  Float bounds (for float values): values are clipped, then quantized
  uniformly to integers in `[0, 2**bits - 1]` with deterministic rounding,
  summed, and dequantized on the server; the error per client value is at
  most half a quantization step, `(upper - lower) / (2**bits - 1) / 2`. TFF
  quantizes to 32 bits in int64; with 32-bit JAX (the default) fedjit uses
  24 bits (what a float32 holds exactly), sent as two int32 secure sums of
  the high 8 and the low 16 bits, so that the sum of up to 32,768 clients
  cannot overflow; with `jax.config.update("jax_enable_x64", True)` it uses
  TFF's 32 bits in int64.

  With only `upper_bound_threshold` (positive), the bounds are `±upper`.

  Adaptive bounds (for float values), as in TFF: `upper_bound_threshold`
  (and `lower_bound_threshold`, if given) may be a
  `fedjit.templates.EstimationProcess` of a float32 bound, such as
  `PrivateQuantileEstimationProcess.no_noise(50.0, 0.95, 1.0,
  multiplier=2.0, secure_estimation=True)`. This round's bounds are the
  processes' `report(state)` (with one process: `±report`); each client
  computes the max and min of its value before clipping, and the state is
  updated with `next(state, max(|max|, |min|)@CLIENTS)` (one process) or
  `next(upper_state, max@CLIENTS)` and `next(lower_state, min@CLIENTS)`
  (two). State: the process's state, or the pair of them. Give a process
  with `secure_estimation=True`: then the bound's update, too, uses only
  secure sums, and `fedjit.privacy_report(...).check()` accepts the round.

  Measurements (TFF's names): `secure_upper_clipped_count`
  and `secure_lower_clipped_count` (clients with some value above / below
  the bounds, summed securely), `secure_upper_threshold`,
  `secure_lower_threshold`.

  Raises:
    TypeError: bounds of different kinds, or neither numbers nor
      `EstimationProcess`es of a float32 bound; a value type of mixed
      dtypes, or of another kind than the bounds.
    ValueError: only an upper bound, not positive; or upper <= lower.

  Example:
    >>> process = SecureSumFactory(10, 0).create(fedjit.TensorType(np.int32))
    >>> out = process.next(process.initialize(), [3, 12, 5])   # 12 is clipped to 10
    >>> int(out.result), int(out.measurements["secure_upper_clipped_count"])
    (18, 1)
  """

  def __init__(self, upper_bound_threshold: Any, lower_bound_threshold: Any = None):
    upper, lower = upper_bound_threshold, lower_bound_threshold
    self._processes = None
    if isinstance(upper, EstimationProcess):
      if lower is not None and not isinstance(lower, EstimationProcess):
        raise TypeError(
            f"Provided upper_bound_threshold and lower_bound_threshold must have the same "
            f"types, but found upper_bound_threshold={upper!r}, "
            f"lower_bound_threshold={lower!r}.")
      _check_norm_process("SecureSumFactory", "upper_bound_threshold", upper)
      if lower is not None:
        _check_norm_process("SecureSumFactory", "lower_bound_threshold", lower)
      self._int = False
      self._processes = (upper, lower)
      self._upper = self._lower = None
      return
    if not (_is_int(upper) or _is_float(upper)):
      raise TypeError(f"SecureSumFactory expects upper_bound_threshold to be an int or float "
                      f"constant, or a fedjit.templates.EstimationProcess of a float32 "
                      f"bound, got {upper!r}.")
    if lower is not None and not (_is_int(lower) == _is_int(upper)
                                  and (_is_int(lower) or _is_float(lower))):
      raise TypeError(
          f"Provided upper_bound_threshold and lower_bound_threshold must have the same "
          f"types, but found upper_bound_threshold={upper!r}, lower_bound_threshold={lower!r}.")
    if lower is None:
      if upper <= 0:
        raise ValueError(
            f"If only `upper_bound_threshold` is specified, it must be positive (its negative "
            f"is the lower bound). Provided `upper_bound_threshold`: {upper}")
      lower = -upper
    elif upper <= lower:
      raise ValueError(f"The provided `upper_bound_threshold` must be larger than the provided "
                       f"`lower_bound_threshold`, but received: {upper} and {lower}.")
    self._int = _is_int(upper)
    self._upper, self._lower = upper, lower

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` for `value_type` client values (integers for
    integer bounds, floats for float bounds)."""
    kind = "integer" if self._int else "floating"
    t, dtype = _value_type("SecureSumFactory", value_type, kind)
    upper, lower = self._upper, self._lower
    wide = (not self._int) and bool(jax.config.jax_enable_x64)
    if self._int:
      bits = math.ceil(math.log2(upper - lower + 1))
      int_dtype = dtype
    else:
      bits = 32 if wide else 24
      int_dtype = np.dtype(np.int64 if wide else np.int32)
    # 32-bit JAX: a 24-bit level (exact in float32) is sent as two secure
    # sums, its high 8 bits and its low 16 bits, so int32 sums of up to
    # 32,768 clients cannot overflow.
    split = (not self._int) and not wide
    int_type = _with_dtype(t, int_dtype)
    levels = float(2 ** bits - 1)

    processes = self._processes

    if processes is None:
      @fedjit.jax_computation
      def bounds():
        return jnp.asarray(upper, dtype), jnp.asarray(lower, dtype)

    @fedjit.jax_computation(TensorType(np.float32))
    def single_bounds(estimate):
      return estimate.astype(dtype), -estimate.astype(dtype)

    @fedjit.jax_computation(TensorType(np.float32), TensorType(np.float32))
    def two_bounds(hi, lo):
      return hi.astype(dtype), lo.astype(dtype)

    @fedjit.jax_computation(t)
    def extremes(value):  # TFF: the client's max and min before clipping
      leaves = jax.tree_util.tree_leaves(value)
      hi = jnp.max(jnp.stack([jnp.max(x) for x in leaves])).astype(jnp.float32)
      lo = jnp.min(jnp.stack([jnp.min(x) for x in leaves])).astype(jnp.float32)
      return hi, lo, jnp.maximum(jnp.abs(hi), jnp.abs(lo))

    @fedjit.jax_computation(t, TensorType(dtype), TensorType(dtype))
    def client_shift(value, hi, lo):
      leaves = jax.tree_util.tree_leaves(value)
      above = jnp.any(jnp.stack([jnp.any(x > hi) for x in leaves])).astype(jnp.int32)
      below = jnp.any(jnp.stack([jnp.any(x < lo) for x in leaves])).astype(jnp.int32)

      def shift(x):
        clipped = jnp.clip(x, lo, hi)
        if self._int:
          return (clipped - lo).astype(int_dtype)
        # Deterministic rounding to the nearest of 2**bits levels.
        scale = levels / (hi - lo).astype(jnp.float64 if wide else jnp.float32)
        q = jnp.round((clipped - lo) * scale)
        return jnp.clip(q, 0, levels).astype(int_dtype)
      shifted = jax.tree_util.tree_map(shift, value)
      if split:
        shifted = (jax.tree_util.tree_map(lambda q: q >> 16, shifted),
                   jax.tree_util.tree_map(lambda q: q & 0xFFFF, shifted))
      return shifted, above, below

    @fedjit.jax_computation(int_type, int_type)
    def join(high, low):
      return jax.tree_util.tree_map(
          lambda h, l: h.astype(jnp.float32) * 65536.0 + l.astype(jnp.float32), high, low)

    @fedjit.jax_computation(_with_dtype(t, np.float32) if split else int_type,
                            TensorType(dtype), TensorType(dtype), INT)
    def server_shift(total, hi, lo, n):
      def back(v):
        if self._int:
          return (v + n.astype(v.dtype) * lo.astype(v.dtype)).astype(dtype)
        step = (hi - lo).astype(jnp.float64 if wide else jnp.float32) / levels
        return (v.astype(step.dtype) * step + n.astype(step.dtype) * lo).astype(dtype)
      return jax.tree_util.tree_map(back, total)

    @fedjit.jax_computation
    def one():
      return jnp.int32(1)

    @fedjit.federated_computation
    def initialize_fn():
      if processes is None:
        return fedjit.federated_value((), SERVER)
      if processes[1] is None:
        return processes[0].initialize()
      return fedjit.federated_zip((processes[0].initialize(), processes[1].initialize()))

    def bounds_and_new_state(state, value):
      if processes is None:
        hi, lo = fedjit.federated_eval(bounds, SERVER)
        return hi, lo, state
      value_max, value_min, abs_max = fedjit.federated_map(extremes, value)
      if processes[1] is None:
        hi, lo = fedjit.federated_map(single_bounds, processes[0].report(state))
        return hi, lo, processes[0].next(state, abs_max)
      hi, lo = fedjit.federated_map(two_bounds, (processes[0].report(state[0]),
                                                 processes[1].report(state[1])))
      return hi, lo, fedjit.federated_zip((processes[0].next(state[0], value_max),
                                           processes[1].next(state[1], value_min)))

    @fedjit.federated_computation(initialize_fn.type_signature.result, FederatedType(t, CLIENTS))
    def next_fn(state, value):
      hi, lo, new_state = bounds_and_new_state(state, value)
      shifted, above, below = fedjit.federated_map(
          client_shift, (value, fedjit.federated_broadcast(hi), fedjit.federated_broadcast(lo)))
      if split:
        total = fedjit.federated_map(join, (
            fedjit.federated_secure_sum_bitwidth(shifted[0], bits - 16),
            fedjit.federated_secure_sum_bitwidth(shifted[1], 16)))
      else:
        total = fedjit.federated_secure_sum_bitwidth(shifted, bits)
      n = fedjit.federated_secure_sum_bitwidth(fedjit.federated_eval(one, CLIENTS), 1)
      result = fedjit.federated_map(server_shift, (total, hi, lo, n))
      measurements = fedjit.federated_zip(collections.OrderedDict(
          secure_upper_clipped_count=fedjit.federated_secure_sum_bitwidth(above, 1),
          secure_lower_clipped_count=fedjit.federated_secure_sum_bitwidth(below, 1),
          secure_upper_threshold=hi, secure_lower_threshold=lo))
      return MeasuredProcessOutput(new_state, result, measurements)

    return AggregationProcess(initialize_fn, next_fn)

