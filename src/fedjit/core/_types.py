"""Federated types: sequences (`T*`), placed values (`{T}@CLIENTS`) and
functions, with the walks over a type's tree (`tensor_types`, `check_concrete`,
...); the one import point of the whole type system.

The base `Type` and the leaf types live in `_type_base`, structures and
`to_type` in `_struct_types`, and `infer_type`, `build_container` and
`struct_fields` in `_struct_values`; all are importable from here. Types
print exactly as TFF prints them, compare by value, are hashable, and equal
types are one object (TFF's interning):

  >>> import numpy as np, fedjit
  >>> str(fedjit.TensorType(np.float32, [None, 784]))
  'float32[?,784]'
  >>> str(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  '{float32}@CLIENTS'
  >>> repr(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  "FederatedType(TensorType(np.float32), PlacementLiteral('clients'), False)"
  >>> fedjit.TensorType(np.int32) is fedjit.TensorType(np.int32)
  True
"""

from __future__ import annotations

from typing import Iterator

from fedjit.core._errors import FederatedTypeError, InvalidTypeError
from fedjit.core._placements import CLIENTS, PlacementLiteral
# The rest of the type system, re-exported: other modules import it from here.
from fedjit.core._struct_types import StructType, StructWithPythonType, to_type  # re-exported
from fedjit.core._struct_values import build_container, infer_type, struct_fields  # re-exported
from fedjit.core._type_base import (AbstractType, PlacementType, TensorType,  # re-exported
                                    Type, _combine)
from fedjit.core._type_specs import (_PY_SCALARS, _annotated_fields,  # re-exported
                                     _dtype, _is_attrs_class, _is_dataclass_class,
                                     _is_dtype_like, _is_dtype_string, _is_name_value_pair,
                                     _is_namedtuple, _is_namedtuple_class, _is_shape_like,
                                     _is_tensor_spec, _record_fields)
# Names this module held before the split, kept importable.
from fedjit.core._errors import TypeNotAssignableError, TypesNotEquivalentError  # noqa: F401
from fedjit.core._placements import SERVER  # noqa: F401
from fedjit.core._struct_types import _RESERVED, _reserved_names, _to_named_types  # noqa: F401
from fedjit.core._type_base import (_INTERNED, _Intern, _dtype_repr, _restore,  # noqa: F401
                                    _string_representation)
from fedjit.core._type_specs import _STRING_DTYPES  # noqa: F401

__all__ = [
    "Type",
    "TensorType",
    "StructType",
    "StructWithPythonType",
    "SequenceType",
    "FederatedType",
    "FunctionType",
    "AbstractType",
    "PlacementType",
    "to_type",
    "infer_type",
]


class SequenceType(Type):
  """A sequence (a client's dataset) of elements, printed `T*`.

  As in TFF (whose sequences are tf.data datasets), list containers in the
  element become tuples.

  Raises:
    InvalidTypeError: the element holds a federated, function or sequence
      type.

  Example:
    >>> import numpy as np, fedjit
    >>> t = fedjit.SequenceType((fedjit.TensorType(np.float32, [None, 784]),
    ...                          fedjit.TensorType(np.int32, [None, 1])))
    >>> str(t)
    '<float32[?,784],int32[?,1]>*'
    >>> repr(fedjit.SequenceType(np.int32))
    'SequenceType(TensorType(np.int32))'
  """

  def __init__(self, element):
    element = _lists_to_tuples(to_type(element))
    bad = _first_in(element, (FederatedType, FunctionType, SequenceType))
    if bad is not None:
      raise InvalidTypeError(
          f"A sequence's elements must be tensors or structures of tensors, got "
          f"{element}, which holds the {_kind(bad)} {bad}. Sequences cannot hold "
          f"federated, function or sequence types.")
    self.element = element

  def children(self) -> Iterator[Type]:
    return iter((self.element,))

  def __repr__(self) -> str:
    return f"SequenceType({self.element!r})"

  def _key(self):
    return (self.element,)

  def _representation_lines(self, formatted: bool) -> list[str]:
    return _combine([self.element._representation_lines(formatted), ["*"]])

  def is_assignable_from(self, other: Type) -> bool:
    return (isinstance(other, SequenceType) and
            self.element.is_assignable_from(other.element))


def _lists_to_tuples(t: Type) -> Type:
  if not isinstance(t, StructType):
    return t
  items = [(n, _lists_to_tuples(e)) for n, e in t.items()]
  c = t.container
  return StructType(items, container=tuple if c is list else c)


def _first_in(t: Type, kinds: tuple) -> Type | None:
  """The first type of one of `kinds` in `t` (itself included, preorder), or None."""
  if isinstance(t, kinds):
    return t
  for child in t.children():
    found = _first_in(child, kinds)
    if found is not None:
      return found
  return None


def _kind(t: Type) -> str:
  return {FederatedType: "federated type", FunctionType: "function type",
          SequenceType: "sequence type"}.get(type(t), "type")


class FederatedType(Type):
  """A value placed at `SERVER` or `CLIENTS`: `{T}@CLIENTS`, `T@SERVER`.

  Args:
    member: the type of each member (anything `to_type` accepts).
    placement: `fedjit.SERVER` or `fedjit.CLIENTS`.
    all_equal: whether all members are equal. Defaults to the placement's
      `default_all_equal`: True at SERVER, False at CLIENTS. An all-equal
      value prints without braces.

  Raises:
    InvalidTypeError: the member holds a federated or function type.

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.FederatedType(np.float32, fedjit.SERVER))
    'float32@SERVER'
  """

  def __init__(self, member, placement: PlacementLiteral, all_equal: bool | None = None):
    if not isinstance(placement, PlacementLiteral):
      raise TypeError(
          f"FederatedType expects a placement (fedjit.SERVER or fedjit.CLIENTS) "
          f"as its second argument, got {placement!r}.")
    member = to_type(member)
    if isinstance(member, FederatedType):
      raise InvalidTypeError(f"A federated type cannot hold another federated type "
                             f"({member}).")
    bad = _first_in(member, (FederatedType, FunctionType))
    if bad is not None:
      raise InvalidTypeError(
          f"A federated type cannot hold a {_kind(bad)}, got the member {member}, "
          f"which holds {bad}.")
    self.member = member
    self.placement = placement
    self.all_equal = (placement.default_all_equal if all_equal is None
                      else bool(all_equal))

  def children(self) -> Iterator[Type]:
    return iter((self.member,))

  def __repr__(self) -> str:
    return f"FederatedType({self.member!r}, {self.placement!r}, {self.all_equal!r})"

  def _key(self):
    return (self.member, self.placement, self.all_equal)

  def _representation_lines(self, formatted: bool) -> list[str]:
    member_lines = self.member._representation_lines(formatted)
    placement_line = f"@{self.placement}"
    if self.all_equal:
      return _combine([member_lines, [placement_line]])
    return _combine([["{"], member_lines, ["}"], [placement_line]])

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, FederatedType) or other.placement != self.placement:
      return False
    if self.all_equal and not other.all_equal:
      return False
    return self.member.is_assignable_from(other.member)


class FunctionType(Type):
  """The type of a computation: `(parameter -> result)`.

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.FunctionType(fedjit.FederatedType(np.float32, fedjit.CLIENTS),
    ...                         fedjit.FederatedType(np.float32, fedjit.SERVER)))
    '({float32}@CLIENTS -> float32@SERVER)'
    >>> repr(fedjit.FunctionType(None, np.float32))
    'FunctionType(None, TensorType(np.float32))'
  """

  def __init__(self, parameter, result):
    self.parameter = None if parameter is None else to_type(parameter)
    self.result = to_type(result)

  def children(self) -> Iterator[Type]:
    if self.parameter is not None:
      return iter((self.parameter, self.result))
    return iter((self.result,))

  def __repr__(self) -> str:
    return f"FunctionType({self.parameter!r}, {self.result!r})"

  def _key(self):
    return (self.parameter, self.result)

  def _representation_lines(self, formatted: bool) -> list[str]:
    parameter_lines = ([""] if self.parameter is None
                       else self.parameter._representation_lines(formatted))
    return _combine([["("], parameter_lines, [" -> "],
                     self.result._representation_lines(formatted), [")"]])

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, FunctionType):
      return False
    if (self.parameter is None) != (other.parameter is None):
      return False
    # Parameters are contravariant.
    if self.parameter is not None and not other.parameter.is_assignable_from(
        self.parameter):
      return False
    return self.result.is_assignable_from(other.result)



def tensor_types(t: Type) -> list[TensorType]:
  """The tensor types of `t` (a tensor, or structures of tensors), depth
  first in field order: the order of a value's `jax.tree_util` leaves.

  Example:
    >>> [str(l) for l in tensor_types(to_type([np.float32, (np.int32, [2])]))]
    ['float32', 'int32[2]']
  """
  if isinstance(t, TensorType):
    return [t]
  return [leaf for e in t.types() for leaf in tensor_types(e)]


def check_no_placement_in(t: Type) -> bool:
  """True if `t` contains no FederatedType or FunctionType."""
  return _first_in(t, (FederatedType, FunctionType)) is None


def check_concrete(t: Type, fn_name: str) -> None:
  """Raises unless `t` holds no AbstractType or PlacementType (computations
  declare concrete types)."""
  bad = _first_in(t, (AbstractType, PlacementType))
  if bad is not None:
    raise FederatedTypeError(
        f"'{fn_name}' declares the type {t}, which holds the "
        f"{'abstract type ' + str(bad) if isinstance(bad, AbstractType) else 'placement type'}"
        f"; fedjit computations take concrete types (tensors, structures, sequences "
        f"and federated types of these). AbstractType and PlacementType describe "
        f"signatures only. Declare the concrete type, or leave the types out of "
        f"@fedjit.jax_computation to have them inferred from the arguments.")


def has_federated(t: Type) -> bool:
  """Whether `t` is, or is a structure holding, a federated type."""
  if isinstance(t, FederatedType):
    return True
  return isinstance(t, StructType) and any(has_federated(e) for e in t.types())


def has_client_values(t: Type) -> bool:
  """Whether `t` holds a `{T}@CLIENTS` value (one member per client)."""
  if isinstance(t, FederatedType):
    return t.placement == CLIENTS and not t.all_equal
  return isinstance(t, StructType) and any(has_client_values(e) for e in t.types())
