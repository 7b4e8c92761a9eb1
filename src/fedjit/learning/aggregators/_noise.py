"""What the noise-adding aggregators share (central and local DP, compression,
robust bucketing): checked numeric arguments, the first noise key (from a
seed or the OS CSPRNG), the global ℓ2 norm, and ε computed inside the round."""

from __future__ import annotations

import collections
import math
import secrets
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import TensorType
from fedjit.learning.aggregators._accounting import PrivacyAccountant

__all__ = ["privacy_computation", "value_fingerprint", "client_key", "split_round_key"]

ROUNDS = TensorType(np.int32)
KEY = TensorType(np.uint32, [2])


def _number(owner: str, name: str, value: Any, *, positive: bool = False,
            probability: bool = False) -> float:
  """`value` as a float after checking it; ValueError (TypeError for a
  non-number) naming `owner` and `name` otherwise."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
    raise TypeError(f"{owner} expects {name} to be a number, got {value!r}.")
  value = float(value)
  if not math.isfinite(value):
    raise ValueError(f"{owner} expects {name} to be finite, got {value}.")
  if probability and not 0 <= value <= 1:
    raise ValueError(f"{owner} expects {name} between 0 and 1 (inclusive), got {value}.")
  if positive and value <= 0:
    raise ValueError(f"{owner} expects {name} > 0, got {value}.")
  if value < 0:
    raise ValueError(f"{owner} expects {name} >= 0, got {value}.")
  return value


def _initial_key(noise_seed: int | None) -> np.ndarray:
  """A raw JAX key (uint32[2]): from `noise_seed`, or 64 fresh bits from the
  operating system's CSPRNG (`secrets`) when it is None."""
  if noise_seed is None:
    return np.frombuffer(secrets.token_bytes(8), dtype=np.uint32).copy()
  if isinstance(noise_seed, bool) or not isinstance(noise_seed, (int, np.integer)) or (
      noise_seed < 0):
    raise TypeError(f"noise_seed must be None (a seed from the OS CSPRNG) or an int >= 0, "
                    f"got {noise_seed!r}.")
  return np.asarray(jax.random.key_data(jax.random.PRNGKey(int(noise_seed) % 2 ** 63)),
                    dtype=np.uint32)


def _global_l2_norm(value):
  leaves = jax.tree_util.tree_leaves(value)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def privacy_computation(accountant: PrivacyAccountant):
  """A jax computation `rounds -> OrderedDict(rounds, epsilon, delta)`: the
  accountant's ε after `rounds` rounds, computed on the host
  (`jax.pure_callback`) inside the compiled round."""
  def host_epsilon(rounds):
    return np.float32(accountant.epsilon(int(np.asarray(rounds))))

  @fedjit.jax_computation(ROUNDS)
  def privacy(rounds):
    eps = jax.pure_callback(host_epsilon, jax.ShapeDtypeStruct((), jnp.float32), rounds,
                            vmap_method="sequential")
    return collections.OrderedDict(rounds=rounds, epsilon=eps,
                                   delta=jnp.float32(accountant.delta))
  return privacy


def _mix(v):
  """A 32-bit integer hash (murmur3's finalizer)."""
  v = (v ^ (v >> 16)) * jnp.uint32(0x85EBCA6B)
  v = (v ^ (v >> 13)) * jnp.uint32(0xC2B2AE35)
  return v ^ (v >> 16)


def value_fingerprint(value) -> jax.Array:
  """A uint32 hash of a structure of float arrays, from their bits and
  positions: two passes of cheap integer arithmetic per element (a sum of
  the bits, and a sum of the bits times odd position weights), mixed.

  Example:
    >>> int(value_fingerprint([jnp.ones(3)])) == int(value_fingerprint([jnp.ones(3)]))
    True
  """
  h = jnp.uint32(0x811C9DC5)
  for leaf in jax.tree_util.tree_leaves(value):
    bits = jax.lax.bitcast_convert_type(leaf.astype(jnp.float32), jnp.uint32).reshape(-1)
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2) + jnp.uint32(1)
    plain = jnp.sum(bits, dtype=jnp.uint32)
    ordered = jnp.sum(bits * weights, dtype=jnp.uint32)
    h = _mix(h ^ _mix(plain ^ jnp.uint32(0x9E3779B9)) ^ _mix(ordered))
  return h


def client_key(round_key: jax.Array, value: Any) -> jax.Array:
  """One client's key of a round: the round's key folded with the client's
  `value_fingerprint` (a client computation has no index, so its value tells
  the clients apart; equal values get equal keys).

  Example:
    >>> key = client_key(round_key, clipped_update)
  """
  return jax.random.fold_in(round_key, value_fingerprint(value))


@fedjit.jax_computation(KEY)
def split_round_key(key):
  """`key -> (next key, this round's key)`: the server's split at the start of
  a round (compression, attacks and local DP draw their round's randomness
  from it)."""
  key, use = jax.random.split(key)
  return key, use
