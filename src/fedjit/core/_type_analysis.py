"""Static checks of types that intrinsics use (TFF's `type_analysis`).

Each function takes a fedjit `Type` and answers one question about it: can
values of this type be added, averaged, compared, summed securely? Names and
answers follow TFF's `federated_language.framework` functions of the same
names.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from fedjit.core._errors import FederatedTypeError
from fedjit.core._placements import Placement
from fedjit.core._types import (FederatedType, FunctionType, SequenceType,
                                StructType, TensorType, Type)

__all__ = [
    "SumIncompatibleError", "preorder_types", "count", "contains", "contains_only",
    "check_is_sum_compatible", "is_sum_compatible", "is_average_compatible",
    "is_min_max_compatible", "is_structure_of_floats", "is_structure_of_integers",
    "check_is_structure_of_integers", "is_single_integer_or_matches_structure",
    "check_federated_type", "contains_federated_types", "contains_tensor_types",
    "is_structure_of_tensors", "is_generic_op_compatible_type",
]


def _children(t: Type) -> list[Type]:
  if isinstance(t, StructType):
    return list(t.types())
  if isinstance(t, FederatedType):
    return [t.member]
  if isinstance(t, SequenceType):
    return [t.element]
  if isinstance(t, FunctionType):
    return ([t.parameter] if t.parameter is not None else []) + [t.result]
  return []


def preorder_types(type_spec: Type) -> Iterator[Type]:
  """Every type inside `type_spec`, itself first, in preorder.

  Example:
    >>> [str(t) for t in preorder_types(fedjit.StructType([np.int32]))]
    ['<int32>', 'int32']
  """
  yield type_spec
  for child in _children(type_spec):
    yield from preorder_types(child)


def count(type_spec: Type, predicate: Callable[[Type], bool]) -> int:
  """How many types inside `type_spec` (itself included) satisfy `predicate`.

  Example:
    >>> count(fedjit.StructType([np.int32] * 3), lambda t: isinstance(t, fedjit.TensorType))
    3
  """
  return sum(1 for t in preorder_types(type_spec) if predicate(t))


def contains(type_spec: Type, predicate: Callable[[Type], bool]) -> bool:
  """Whether any type inside `type_spec` (itself included) satisfies `predicate`.

  Example:
    >>> contains(fedjit.StructType([np.int32]), lambda t: isinstance(t, fedjit.TensorType))
    True
  """
  return any(predicate(t) for t in preorder_types(type_spec))


def contains_only(type_spec: Type, predicate: Callable[[Type], bool]) -> bool:
  """Whether every type inside `type_spec` (itself included) satisfies `predicate`.

  Example:
    >>> contains_only(fedjit.StructType([np.int32]), lambda t: isinstance(t, fedjit.TensorType))
    False
  """
  return not contains(type_spec, lambda t: not predicate(t))


def contains_federated_types(type_spec: Type) -> bool:
  """Whether `type_spec` holds a federated type anywhere.

  Example:
    >>> contains_federated_types(fedjit.StructType([fedjit.FederatedType(np.int32, fedjit.SERVER)]))
    True
  """
  return contains(type_spec, lambda t: isinstance(t, FederatedType))


def contains_tensor_types(type_spec: Type) -> bool:
  """Whether `type_spec` holds a tensor type anywhere.

  Example:
    >>> contains_tensor_types(fedjit.StructType([]))
    False
  """
  return contains(type_spec, lambda t: isinstance(t, TensorType))


def is_structure_of_tensors(type_spec: Type) -> bool:
  """Whether `type_spec` is made of structures and tensors only.

  Example:
    >>> is_structure_of_tensors(fedjit.StructType([np.int32, (np.float32, [2])]))
    True
  """
  return contains_only(type_spec, lambda t: isinstance(t, (StructType, TensorType)))


def is_generic_op_compatible_type(type_spec: Type | None) -> bool:
  """Whether generic operators (element-wise arithmetic) apply to values of
  `type_spec`: structures of tensors (`None` is not).

  Example:
    >>> is_generic_op_compatible_type(fedjit.SequenceType(np.int32))
    False
  """
  return type_spec is not None and is_structure_of_tensors(type_spec)


class SumIncompatibleError(FederatedTypeError):
  """A type whose values cannot be added (TFF's `SumIncompatibleError`)."""

  def __init__(self, type_spec: Type, context: Type, reason: str):
    super().__init__(
        f"Expected a type that can be summed (numeric tensors of a fully known "
        f"shape, in structures, possibly placed), but was given {context}, which "
        f"contains {type_spec}: {reason}.")


SumIncompatibleError.__module__ = "fedjit"


def _is_numeric(dtype: np.dtype) -> bool:
  return bool(np.issubdtype(dtype, np.number)) or dtype.name == "bfloat16"


def check_is_sum_compatible(type_spec: Type, context: Type | None = None) -> None:
  """Raises `SumIncompatibleError` unless values of `type_spec` can be added.

  Sum-compatible are numeric tensors (not bool, not str) of fully known shape,
  in nested structures, possibly placed.

  Example:
    >>> check_is_sum_compatible(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    >>> check_is_sum_compatible(fedjit.TensorType(np.int32, [None]))
    Traceback (most recent call last):
    SumIncompatibleError: ... int32[?]: its shape [?] is not fully known.
  """
  context = type_spec if context is None else context
  if isinstance(type_spec, TensorType):
    if not _is_numeric(type_spec.dtype):
      raise SumIncompatibleError(type_spec, context, f"{type_spec.dtype.name} is not numeric")
    if any(d is None for d in type_spec.shape):
      dims = ",".join("?" if d is None else str(d) for d in type_spec.shape)
      raise SumIncompatibleError(type_spec, context, f"its shape [{dims}] is not fully known")
  elif isinstance(type_spec, StructType):
    for t in type_spec.types():
      check_is_sum_compatible(t, context)
  elif isinstance(type_spec, FederatedType):
    check_is_sum_compatible(type_spec.member, context)
  else:
    raise SumIncompatibleError(
        type_spec, context, "only structures of tensors (possibly placed) can be summed")


def is_sum_compatible(type_spec: Type) -> bool:
  """Whether values of `type_spec` can be added (see `check_is_sum_compatible`).

  Example:
    >>> is_sum_compatible(fedjit.TensorType(np.bool_))
    False
  """
  try:
    check_is_sum_compatible(type_spec)
  except SumIncompatibleError:
    return False
  return True


def _all_tensors(type_spec: Type, test: Callable[[np.dtype], bool]) -> bool:
  if isinstance(type_spec, TensorType):
    return bool(test(type_spec.dtype))
  if isinstance(type_spec, StructType):
    return all(_all_tensors(t, test) for t in type_spec.types())
  if isinstance(type_spec, FederatedType):
    return _all_tensors(type_spec.member, test)
  return False


def is_average_compatible(type_spec: Type) -> bool:
  """Whether values of `type_spec` can be averaged: floating-point or complex
  tensors, in structures, possibly placed.

  Example:
    >>> is_average_compatible(fedjit.StructType([("x", np.float32)]))
    True
  """
  return _all_tensors(type_spec, lambda d: np.issubdtype(d, np.inexact))


def is_min_max_compatible(type_spec: Type) -> bool:
  """Whether values of `type_spec` can be compared for `federated_min`/`max`:
  integer or floating-point tensors, in structures, possibly placed.

  Example:
    >>> is_min_max_compatible(fedjit.TensorType(np.complex64))
    False
  """
  return _all_tensors(type_spec, lambda d: np.issubdtype(d, np.integer)
                      or np.issubdtype(d, np.floating))


def is_structure_of_floats(type_spec: Type) -> bool:
  """Whether `type_spec` holds only floating-point tensors (an empty structure
  does).

  Example:
    >>> is_structure_of_floats(fedjit.StructType([np.float32, np.bool_]))
    False
  """
  return _all_tensors(type_spec, lambda d: np.issubdtype(d, np.floating))


def is_structure_of_integers(type_spec: Type) -> bool:
  """Whether `type_spec` holds only integer tensors (not bool; an empty
  structure does).

  Example:
    >>> is_structure_of_integers(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    True
  """
  return _all_tensors(type_spec, lambda d: np.issubdtype(d, np.integer))


def check_is_structure_of_integers(type_spec: Type) -> None:
  """Raises a `FederatedTypeError` unless `type_spec` holds only integers.

  Example:
    >>> check_is_structure_of_integers(fedjit.TensorType(np.float32))
    Traceback (most recent call last):
    FederatedTypeError: Expected a structure of integers, but was given float32.
  """
  if not is_structure_of_integers(type_spec):
    raise FederatedTypeError(f"Expected a structure of integers, but was given {type_spec}.")


def is_single_integer_or_matches_structure(type_sig: Type, shape_type: Type) -> bool:
  """Whether `type_sig` is one integer (used for every tensor of `shape_type`)
  or a structure of single integers with the structure (names included) of
  `shape_type`: the bounds of `federated_secure_sum` and its variants.

  Example:
    >>> is_single_integer_or_matches_structure(
    ...     fedjit.TensorType(np.int32), fedjit.StructType([np.int32, np.int32]))
    True
  """
  if isinstance(type_sig, TensorType):
    return bool(np.issubdtype(type_sig.dtype, np.integer)) and all(
        d is not None for d in type_sig.shape) and int(np.prod(type_sig.shape)) == 1
  if isinstance(type_sig, StructType) and isinstance(shape_type, StructType):
    if len(type_sig) != len(shape_type):
      return False
    for (n1, t1), (n2, t2) in zip(type_sig.items(), shape_type.items()):
      if n1 != n2 or not is_single_integer_or_matches_structure(t1, t2):
        return False
    return True
  return False


def check_federated_type(type_spec: FederatedType, member: Type | None = None,
                         placement: Placement | None = None,
                         all_equal: bool | None = None) -> None:
  """Raises a `FederatedTypeError` unless `type_spec` is a federated type with
  the given member type (assignable from its member), placement and
  all-equal flag; `None` leaves that part unchecked.

  Example:
    >>> check_federated_type(fedjit.FederatedType(np.int32, fedjit.CLIENTS),
    ...                      placement=fedjit.CLIENTS)
  """
  if not isinstance(type_spec, FederatedType):
    raise FederatedTypeError(f"Expected a federated type, but was given {type_spec}.")
  if member is not None and not member.is_assignable_from(type_spec.member):
    raise FederatedTypeError(
        f"Expected a federated type with members of type {member}, but was given "
        f"{type_spec}.")
  if placement is not None and type_spec.placement != placement:
    raise FederatedTypeError(
        f"Expected a federated type placed at {placement}, but was given {type_spec}.")
  if all_equal is not None and type_spec.all_equal != all_equal:
    raise FederatedTypeError(
        f"Expected a federated type with all_equal={all_equal}, but was given "
        f"{type_spec}.")
