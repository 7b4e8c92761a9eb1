"""Compression of client values: stochastic uniform quantization after a random
Hadamard rotation (`StochasticQuantizationFactory`, an unbiased sum), and
`compression_aggregator`, the weighted mean that uses it.

A client flattens its value into one vector, pads it to a power of two,
rotates it (random signs, then the orthonormal Walsh-Hadamard transform),
and rounds every coordinate stochastically to one of 2**bits levels between
the vector's minimum and maximum, so that its expectation is the rotated
value itself. It sends the levels (bits each) and the two end points. The
server sums the dequantized vectors, undoes the rotation once (it is linear
and the same for every client of a round) and drops the padding. The
rotation spreads a vector's mass evenly over the coordinates, which shrinks
the range [min, max] and so the rounding error (Suresh et al., 2017;
TFF's `EncodedSumFactory` with `tensorflow_model_optimization` encoders).

The rotation's signs come from the round's key in the aggregator's state;
each client's rounding from that key folded with a fingerprint of its value
(a client computation has no index).
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
from fedjit.core import CLIENTS, SERVER, FederatedType, TensorType
from fedjit.learning.aggregators._noise import _initial_key
from fedjit.learning.aggregators._noise import split_round_key, value_fingerprint
from fedjit.learning.aggregators._mean import (MeanFactory, UnweightedAggregationFactory,
                                               _check_value_type, _tensor_leaves)
from fedjit.learning.templates._processes import AggregationProcess, MeasuredProcessOutput
from fedjit.learning.templates._stages import zeros_of

__all__ = ["StochasticQuantizationFactory", "compression_aggregator", "hadamard"]

KEY = TensorType(np.uint32, [2])


def hadamard(x: jax.Array) -> jax.Array:
  """The orthonormal Walsh-Hadamard transform of a vector whose length is a
  power of two (its own inverse).

  Example:
    >>> hadamard(jnp.array([1.0, 0.0])).tolist()   # [1, 1] / sqrt(2)
    [0.7071067690849304, 0.7071067690849304]
  """
  n = x.shape[0]
  if n & (n - 1):
    raise ValueError(f"hadamard needs a length that is a power of two, got {n}.")
  h = 1
  while h < n:
    x = x.reshape(-1, 2, h)
    x = jnp.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], axis=1).reshape(n)
    h *= 2
  return x / jnp.sqrt(jnp.float32(n))


def _flatten(value):
  leaves = jax.tree_util.tree_leaves(value)
  return jnp.concatenate([x.astype(jnp.float32).reshape(-1) for x in leaves])


def _unflatten(like_type_value, vector):
  leaves, treedef = jax.tree_util.tree_flatten(like_type_value)
  out, start = [], 0
  for x in leaves:
    out.append(vector[start:start + x.size].reshape(x.shape).astype(x.dtype))
    start += x.size
  return jax.tree_util.tree_unflatten(treedef, out)


class StochasticQuantizationFactory(UnweightedAggregationFactory):
  """The sum of client values, each sent as `bits`-bit stochastically
  rounded levels after a random Hadamard rotation (unbiased: the expected
  result is the exact sum).

  State: `OrderedDict(key=uint32[2])`; measurements:
  `OrderedDict(bits_per_client=int32, uncompressed_bits_per_client=int32)`
  (a client sends `bits` per padded coordinate plus two float32 end points).

  Args:
    bits: bits per coordinate, 1 to 16.
    rotation: apply the random Hadamard rotation (True) or quantize the
      value as it is (False).
    noise_seed: None (the first key from the OS CSPRNG) or an int.

  Raises:
    TypeError / ValueError: for bad arguments (the message says which).

  Example:
    >>> mean = fedjit.aggregators.MeanFactory(
    ...     value_sum_factory=fedjit.aggregators.StochasticQuantizationFactory(bits=8))
  """

  def __init__(self, bits: int = 8, rotation: bool = True, noise_seed: "int | None" = None):
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 16:
      raise ValueError(f"StochasticQuantizationFactory expects bits to be an int in [1, 16], "
                       f"got {bits!r}.")
    if not isinstance(rotation, bool):
      raise TypeError(f"rotation must be True or False, got {rotation!r}.")
    _initial_key(noise_seed)
    self._bits, self._rotation, self._noise_seed = int(bits), rotation, noise_seed

  def create(self, value_type: Any) -> AggregationProcess:
    """An `AggregationProcess` summing compressed `value_type` values."""
    value_type = _check_value_type("StochasticQuantizationFactory", value_type)
    sizes = [int(np.prod(t.shape)) for t in _tensor_leaves(value_type)]
    d = sum(sizes)
    padded = 1 << max(d - 1, 0).bit_length() if self._rotation else d
    bits, rotation = self._bits, self._rotation
    levels = float(2 ** bits - 1)
    key0 = _initial_key(self._noise_seed)
    vector = TensorType(np.float32, [padded])

    @fedjit.jax_computation
    def initial_key():
      return jnp.asarray(key0, jnp.uint32)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_zip(collections.OrderedDict(
          key=fedjit.federated_eval(initial_key, SERVER)))

    def signs(round_key):
      return jnp.where(jax.random.bernoulli(jax.random.fold_in(round_key, 0), 0.5, (padded,)),
                       1.0, -1.0).astype(jnp.float32)

    @fedjit.jax_computation(value_type, KEY)
    def encode(value, round_key):
      x = _flatten(value)
      if rotation:
        x = hadamard(jnp.pad(x, (0, padded - d)) * signs(round_key))
      lo, hi = jnp.min(x), jnp.max(x)
      step = jnp.where(hi > lo, (hi - lo) / levels, 1.0)
      scaled = (x - lo) / step
      floor = jnp.floor(scaled)
      key = jax.random.fold_in(jax.random.fold_in(round_key, 1), value_fingerprint(value))
      # Up with probability (scaled - floor): E[level] = scaled (unbiased).
      up = jax.random.uniform(key, x.shape) < (scaled - floor)
      q = jnp.clip(floor + up, 0, levels)
      # What the server reconstructs from the levels and the two end points.
      return lo + q * step

    @fedjit.jax_computation(vector, KEY)
    def decode(total, round_key):
      x = total
      if rotation:
        x = hadamard(x) * signs(round_key)
      return _unflatten(zeros_of(value_type), x[:d])

    @fedjit.jax_computation
    def sizes_in_bits():
      return jnp.int32(padded * bits + 64), jnp.int32(d * 32)

    @fedjit.federated_computation(initialize_fn.type_signature.result,
                                  FederatedType(value_type, CLIENTS))
    def next_fn(state, value):
      key, round_key = fedjit.federated_map(split_round_key, state.key)
      sent = fedjit.federated_map(encode, (value, fedjit.federated_broadcast(round_key)))
      total = fedjit.federated_sum(sent)
      result = fedjit.federated_map(decode, (total, round_key))
      sent_bits, plain_bits = fedjit.federated_eval(sizes_in_bits, SERVER)
      return MeasuredProcessOutput(
          fedjit.federated_zip(collections.OrderedDict(key=key)), result,
          fedjit.federated_zip(collections.OrderedDict(
              bits_per_client=sent_bits, uncompressed_bits_per_client=plain_bits)))

    return AggregationProcess(initialize_fn, next_fn)


def compression_aggregator(weighted: bool = True, bits: int = 8,
                           noise_seed: "int | None" = None):
  """A mean whose client values are compressed: `MeanFactory` (or
  `UnweightedMeanFactory`) summing the values with
  `StochasticQuantizationFactory(bits)` (TFF's `compression_aggregator`
  quantizes to 8 bits too; its zeroing and clipping stages are not included
  here).

  Example:
    >>> trainer = build_weighted_fed_avg(model, client_optimizer_fn,
    ...                                  model_aggregator=compression_aggregator())
  """
  if not isinstance(weighted, bool):
    raise TypeError(f"weighted must be True or False, got {weighted!r}.")
  quantized = StochasticQuantizationFactory(bits, noise_seed=noise_seed)
  if weighted:
    return MeanFactory(value_sum_factory=quantized)
  from fedjit.learning.aggregators._mean import UnweightedMeanFactory
  return UnweightedMeanFactory(value_sum_factory=quantized)
