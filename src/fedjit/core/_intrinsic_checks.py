"""The placement and type checks that intrinsics share, with their error messages
(`PlacementError`, `FederatedTypeError` naming the expected and the given type).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedjit.core import _ir
from fedjit.core._computations import Computation, JaxComputation
from fedjit.core._errors import FederatedTypeError, FederatedValueError, PlacementError
from fedjit.core._placements import CLIENTS, SERVER, Placement
from fedjit.core._tracing import zip_federated
from fedjit.core._types import (FederatedType, FunctionType, SequenceType, StructType,
                                TensorType, Type, check_no_placement_in)


def _placed(value: _ir.FederatedValue, name: str, placement: Placement | None = None,
            what: str = "value") -> FederatedType:
  t = value.type
  if not isinstance(t, FederatedType):
    expected = f"T@{placement}" if placement == SERVER else (
        f"{{T}}@{placement}" if placement else "a federated value ({T}@CLIENTS or T@SERVER)")
    raise PlacementError(
        f"fedjit.{name} expects its {what} to be {expected}, but was given the "
        f"unplaced type {t}. Place it first, e.g. with fedjit.federated_value(x, "
        f"fedjit.{placement or 'CLIENTS'}).")
  if placement is not None and t.placement != placement:
    hint = {
        ("federated_mean", SERVER): "Values at SERVER are already aggregated; use "
        "the value directly, or fedjit.federated_broadcast it to the clients first.",
        ("federated_broadcast", CLIENTS): "The value is already at CLIENTS.",
    }.get((name, t.placement), f"Move it to {placement} first.")
    raise PlacementError(
        f"fedjit.{name} expects its {what} to be placed at {placement} "
        f"({'{T}@CLIENTS' if placement == CLIENTS else 'T@SERVER'}), but was given "
        f"{t}. {hint}")
  return t


def _as_computation(fn: Any, name: str) -> Computation:
  if isinstance(fn, _ir.FunctionValue):
    return fn.ref()
  if isinstance(fn, (Computation, _ir.FunctionRef, _ir.DeferredComputation)):
    return fn
  if isinstance(fn, _ir.FederatedValue):
    raise FederatedTypeError(f"fedjit.{name} expects a function (a jax_computation), "
                             f"but was given a value of type {fn.type}.")
  if callable(fn):
    return JaxComputation(fn, None)
  raise TypeError(f"fedjit.{name} expects a jax_computation (or a Python function "
                  f"of JAX code), got {fn!r}.")


def _check_float(t: FederatedType, name: str) -> None:
  leaves = _tensor_leaves(t.member)
  if leaves is None or not leaves or not all(
      np.issubdtype(l.dtype, np.floating) for l in leaves):
    raise FederatedTypeError(
        f"fedjit.{name} averages floating-point values, but was given {t}. Cast "
        f"the values to float32 in a jax_computation first.")


def _tensor_leaves(t: Type):
  if isinstance(t, TensorType):
    return [t]
  if isinstance(t, StructType):
    out = []
    for e in t.types():
      sub = _tensor_leaves(e)
      if sub is None:
        return None
      out.extend(sub)
    return out
  return None


def _client_value(b: _ir.Builder, value: Any, name: str, what: str) -> _ir.FederatedValue:
  """`value` as one `{T}@CLIENTS` value (a structure of them is zipped)."""
  v = b.value(value, what)
  if isinstance(v.type, StructType) and not check_no_placement_in(v.type):
    v = zip_federated(b, v, name)
  _placed(v, name, CLIENTS)
  return v


def _reason(e: Exception) -> str:
  return str(e).rsplit(": ", 1)[-1].rstrip(".")


def _check_constant_bound(name: str, what: str, leaves) -> None:
  for leaf in leaves:
    x = int(np.asarray(leaf).reshape(()))
    if what == "bitwidth" and not 0 <= x <= 62:
      raise FederatedValueError(f"fedjit.{name} expects a bitwidth in [0, 62], got {x}.")
    if what == "modulus" and x < 1:
      raise FederatedValueError(f"fedjit.{name} expects a positive modulus, got {x}.")
    if what == "max_input" and x < 0:
      raise FederatedValueError(f"fedjit.{name} expects a max_input >= 0, got {x}.")


def _check_result(comp, expected: Type, what: str) -> None:
  got = comp.type_signature.result
  if not expected.is_assignable_from(got):
    raise FederatedTypeError(
        f"federated_aggregate's {what} ('{comp.name}') must return the accumulator "
        f"type {expected} (the type of zero), but returns {got}.")


def _check_function_value(fn: Any, name: str, with_mask: bool) -> None:
  if isinstance(fn, _ir.FunctionValue) and with_mask:
    raise FederatedTypeError(
        f"fedjit.{name}(..., with_mask=True) needs a Python function or jax_computation "
        f"that takes the mask; the function parameter {fn.type} does not.")


def _reduce_type(name: str):
  def result_of(ft: FunctionType, element: Type, zero: Type) -> Type:
    expected = StructType([zero, element])
    if ft.parameter is None or not ft.parameter.is_assignable_from(expected):
      raise FederatedTypeError(
          f"fedjit.{name} expects op to take the accumulator and an element, "
          f"{expected}, but the function has the type {ft}.")
    if not zero.is_assignable_from(ft.result):
      raise FederatedTypeError(
          f"fedjit.{name} expects op to return the accumulator type {zero} (the type "
          f"of zero), but the function has the type {ft}.")
    return zero
  return result_of


def _map_type(ft: FunctionType, element: Type, zero) -> Type:
  if ft.parameter is None or not ft.parameter.is_assignable_from(element):
    raise FederatedTypeError(
        f"fedjit.sequence_map expects a function of the elements, {element}, but the "
        f"function has the type {ft}.")
  return SequenceType(ft.result)
