"""The secure-sum intrinsics: `federated_secure_sum`, `federated_secure_sum_bitwidth`
and `federated_secure_modular_sum` (integer sums with a per-tensor bound).
"""

from __future__ import annotations

from typing import Any

from fedjit.core import _ir
from fedjit.core import _type_analysis
from fedjit.core._errors import FederatedTypeError, PlacementError
from fedjit.core._intrinsic_checks import _check_constant_bound, _client_value, _tensor_leaves
from fedjit.core._placements import SERVER
from fedjit.core._tracing import builder_for as _builder
from fedjit.core._types import FederatedType, StructType, TensorType, Type, check_no_placement_in

__all__ = ["federated_secure_sum", "federated_secure_sum_bitwidth",
           "federated_secure_modular_sum"]


def _secure(name: str, value: Any, bound: Any, what: str) -> _ir.FederatedValue:
  """A secure-sum node: `{T}@CLIENTS` integers and an unplaced integer bound
  (one for all tensors, or a structure matching T)."""
  b = _builder(name)
  v = _client_value(b, value, name, "value to sum")
  t = v.type
  if not _type_analysis.is_structure_of_integers(t.member):
    raise FederatedTypeError(
        f"fedjit.{name} adds integers, but was given {t}. Quantize the values to "
        f"int32 in a jax_computation first.")
  bv = b.value(bound, what)
  if not check_no_placement_in(bv.type):
    raise PlacementError(f"fedjit.{name} expects an unplaced {what}, but was given "
                         f"{bv.type}.")
  if not _type_analysis.is_single_integer_or_matches_structure(bv.type, t.member):
    raise FederatedTypeError(
        f"fedjit.{name} expects {what} to be one integer (for every tensor) or a "
        f"structure of integers matching the value, one per tensor; the value has "
        f"members of type {t.member}, {what} has the type {bv.type}.")
  node = b.nodes[bv.index]
  if node.op == "constant":
    _check_constant_bound(name, what, node.attrs["value"])
  # One scalar bound per tensor of the value, in order (a single integer is
  # used for every tensor, as in TFF).
  leaves = _bound_leaves(bv, t.member)
  flat = b.add("struct", [l.index for l in leaves],
               StructType([l.type for l in leaves], container=tuple))
  return b.add("intrinsic", [v.index, flat.index], FederatedType(t.member, SERVER, True),
               name=name)


def _bound_leaves(bound: _ir.FederatedValue, member: Type) -> list:
  if isinstance(bound.type, TensorType):
    return [bound] * len(_tensor_leaves(member))
  return [l for i, ft in enumerate(member.types()) for l in _bound_leaves(bound[i], ft)]


def federated_secure_sum(value: Any, max_input: Any) -> _ir.FederatedValue:
  """Sum of integer client values, each in `[0, max_input]`, at the server.

  `({T}@CLIENTS, M) -> T@SERVER`, the plain sum Σᵢ vᵢ, as in TFF: `max_input`
  is the largest value (inclusive) any input may take; it lets a secure
  aggregation protocol size its messages. A client value outside
  `[0, max_input]` makes the computation fail when it runs (a ValueError
  naming the client). Here the sum is computed in the clear; the protocol,
  in which the server learns only the sum, comes with the deployment
  runtime.

  Args:
    value: `{T}@CLIENTS` with integer tensors (a structure of them).
    max_input: one integer for every tensor of `value`, or a structure of
      integers matching `T` (an unplaced value, such as a Python int).

  Raises:
    PlacementError, FederatedTypeError: wrong placements or types.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_secure_sum(counts, 100)
    >>> total([1, 2, 10])
    np.int32(13)
  """
  return _secure("federated_secure_sum", value, max_input, "max_input")


def federated_secure_sum_bitwidth(value: Any, bitwidth: Any) -> _ir.FederatedValue:
  """Sum of integer client values of at most `bitwidth` bits, at the server.

  As in TFF, the same as `federated_secure_sum(value, 2**bitwidth - 1)`: each
  input must lie in `[0, 2**bitwidth - 1]` (checked when the computation
  runs), and the result is the plain sum (its bit width grows with the
  number of clients). For a sum that wraps around, use
  `federated_secure_modular_sum`.

  Args:
    value: `{T}@CLIENTS` with integer tensors (a structure of them).
    bitwidth: an integer in [0, 62] for every tensor, or a structure of them
      matching `T`.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_secure_sum_bitwidth(counts, 8)
    >>> total([200, 100, 5])
    np.int32(305)
  """
  return _secure("federated_secure_sum_bitwidth", value, bitwidth, "bitwidth")


def federated_secure_modular_sum(value: Any, modulus: Any) -> _ir.FederatedValue:
  """Sum of integer client values modulo `modulus`, at the server.

  `(Σᵢ vᵢ) mod modulus`, in `[0, modulus - 1]`; values outside that range
  count as `vᵢ mod modulus` (TFF's
  `tff.backends.mapreduce.federated_secure_modular_sum`).

  Args:
    value: `{T}@CLIENTS` with integer tensors (a structure of them).
    modulus: a positive integer for every tensor, or a structure of them
      matching `T`.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_secure_modular_sum(counts, 5)
    >>> total([1, 2, 10])
    np.int32(3)
  """
  return _secure("federated_secure_modular_sum", value, modulus, "modulus")
