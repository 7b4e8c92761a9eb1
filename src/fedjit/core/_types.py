"""Federated types: tensors, structures, sequences, placed values, functions.

Types print exactly as TFF prints them, compare by value, are hashable, and
equal types are one object (TFF's interning):

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

import collections
import dataclasses
import typing
import warnings
import weakref
from typing import Any, Iterable, Iterator, Sequence as PySequence

import jax
import numpy as np

from fedjit.core._errors import (FederatedTypeError, InvalidTypeError,
                                 TypeNotAssignableError, TypesNotEquivalentError)
from fedjit.core._placements import CLIENTS, SERVER, PlacementLiteral

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


# Equal types are one object, as in TFF: construction looks the new type up
# here by (class, value) and returns the existing one. Weak values, so types
# nobody holds are dropped.
_INTERNED: "weakref.WeakValueDictionary[tuple, Type]" = weakref.WeakValueDictionary()


class _Intern(type):
  """Metaclass: `TensorType(np.int32) is TensorType(np.int32)`."""

  def __call__(cls, *args, **kwargs):
    instance = super().__call__(*args, **kwargs)
    key = (type(instance), instance._key())
    try:
      return _INTERNED.setdefault(key, instance)
    except TypeError:  # an unhashable part (cannot happen for well-formed types)
      return instance


def _restore(cls: type, state: dict) -> "Type":
  t = object.__new__(cls)
  t.__dict__.update(state)
  return _INTERNED.setdefault((cls, t._key()), t)


class Type(metaclass=_Intern):
  """Base class of all fedjit types.

  Types are immutable values: `==` compares them structurally, they hash, and
  equal types are the same object. `str()` is TFF's compact form and `repr()`
  TFF's constructor form.
  """

  def compact_representation(self) -> str:
    """The one-line form, as `str()` gives it.

    Example:
      >>> import numpy as np, fedjit
      >>> fedjit.StructType([('a', np.int32)]).compact_representation()
      '<a=int32>'
    """
    return _string_representation(self, formatted=False)

  def formatted_representation(self) -> str:
    """A multi-line form with structures indented, for long types.

    Example:
      >>> import numpy as np, fedjit
      >>> print(fedjit.StructType([('a', np.int32), ('b', np.float32)])
      ...       .formatted_representation())
      <
        a=int32,
        b=float32
      >
    """
    return _string_representation(self, formatted=True)

  def compact_str(self) -> str:
    """Same as `compact_representation()` (fedjit's earlier name)."""
    return self.compact_representation()

  def children(self) -> Iterator["Type"]:
    """The immediate child types (struct fields, the member, the element...).

    Example:
      >>> import numpy as np, fedjit
      >>> [str(t) for t in fedjit.FunctionType(np.int32, np.float32).children()]
      ['int32', 'float32']
    """
    return iter(())

  def __str__(self) -> str:
    return self.compact_representation()

  def __repr__(self) -> str:
    raise NotImplementedError

  def _key(self):
    raise NotImplementedError

  def __eq__(self, other) -> bool:
    return self is other or (type(other) is type(self) and self._key() == other._key())

  def __ne__(self, other) -> bool:
    return not self == other

  def __hash__(self) -> int:
    h = self.__dict__.get("_hash")
    if h is None:
      h = hash((type(self).__name__, self._key()))
      self.__dict__["_hash"] = h
    return h

  def __reduce__(self):
    # Unpickling and deep copies give back the interned type; the cached hash
    # is left out (string hashes differ between processes).
    state = {k: v for k, v in self.__dict__.items() if k != "_hash"}
    return (_restore, (type(self), state))

  def is_assignable_from(self, other: "Type") -> bool:
    """Whether a value of type `other` may be used where `self` is expected.

    `?` dimensions accept any size, `{T}@CLIENTS` accepts `T@CLIENTS`, a named
    structure accepts an unnamed one with the same fields (not the reverse),
    and Python containers do not matter.

    Example:
      >>> import numpy as np, fedjit
      >>> t = fedjit.TensorType(np.float32, [None, 2])
      >>> t.is_assignable_from(fedjit.TensorType(np.float32, [5, 2]))
      True
    """
    raise NotImplementedError

  def check_assignable_from(self, other: "Type") -> None:
    """Raises unless `self.is_assignable_from(other)`.

    Raises:
      TypeNotAssignableError: values of `other` cannot be used as `self`.

    Example:
      >>> import numpy as np, fedjit
      >>> fedjit.TensorType(np.float32, [None]).check_assignable_from(
      ...     fedjit.TensorType(np.float32, [3]))
    """
    if not self.is_assignable_from(other):
      raise TypeNotAssignableError(
          f"Expected {other} to be assignable to {self}.", source_type=other,
          target_type=self)

  def is_equivalent_to(self, other: "Type") -> bool:
    """Whether each of `self` and `other` is assignable from the other.

    Example:
      >>> import numpy as np, fedjit
      >>> fedjit.TensorType(np.int32).is_equivalent_to(fedjit.TensorType(np.int32, [1]))
      False
    """
    return self.is_assignable_from(other) and other.is_assignable_from(self)

  def check_equivalent_to(self, other: "Type") -> None:
    """Raises unless `self.is_equivalent_to(other)`.

    Raises:
      TypesNotEquivalentError: the types are not equivalent.

    Example:
      >>> import numpy as np, fedjit
      >>> fedjit.TensorType(np.int32).check_equivalent_to(fedjit.TensorType(np.int32))
    """
    if not self.is_equivalent_to(other):
      raise TypesNotEquivalentError(
          f"Expected {self} to be equivalent to {other}.", first_type=self,
          second_type=other)

  def is_identical_to(self, other: "Type") -> bool:
    """Whether the types are equal (`self == other`), containers included."""
    return self == other


def _dtype(spec) -> np.dtype:
  try:
    return np.dtype(spec)
  except TypeError as e:
    raise TypeError(
        f"Expected a dtype (such as np.float32, jnp.int32 or 'float32'), "
        f"got {spec!r}.") from e


def _dtype_repr(dtype: np.dtype) -> str:
  return f"np.{dtype.type.__name__}"


class TensorType(Type):
  """An array type with a dtype and a shape; `None` dimensions print as `?`.

  Args:
    dtype: a NumPy/JAX dtype or its name.
    shape: a sequence of ints or `None` (unknown size); `()` for scalars. A
      single int `n` means the vector shape `[n]`, as in TFF.

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.TensorType(np.int32, [None, 1]))
    'int32[?,1]'
    >>> str(fedjit.TensorType(np.float32, 3))
    'float32[3]'
    >>> repr(fedjit.TensorType(np.int32, [10]))
    'TensorType(np.int32, (10,))'
  """

  def __init__(self, dtype, shape: "Iterable[int | None] | int" = ()):
    self.dtype = _dtype(dtype)
    if shape is None:
      raise TypeError("TensorType shape must be a sequence; use () for a scalar, or "
                      "[None] for a vector of unknown size.")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
      shape = (int(shape),)
    dims = []
    for d in tuple(shape):
      if d is None:
        dims.append(None)
      else:
        try:
          dims.append(int(d))
        except Exception:  # noqa: BLE001
          # Symbolic (jax.export) dimensions are unknown sizes.
          dims.append(None)
    self.shape = tuple(dims)

  def __repr__(self) -> str:
    if not self.shape:
      return f"TensorType({_dtype_repr(self.dtype)})"
    return f"TensorType({_dtype_repr(self.dtype)}, {self.shape!r})"

  def _key(self):
    return (self.dtype.name, self.shape)

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, TensorType) or other.dtype != self.dtype:
      return False
    if len(other.shape) != len(self.shape):
      return False
    return all(a is None or a == b for a, b in zip(self.shape, other.shape))


def _is_name_value_pair(x, name_types=(str, type(None))) -> bool:
  """A `(name, value)` field: a 2-sequence whose first item is a name (TFF's rule).

  A dtype name such as 'float32' is a dtype here, not a field name (fedjit
  accepts dtype names where TFF does not), so `('float32', [2])` stays the
  tensor spec `float32[2]`.
  """
  return (isinstance(x, collections.abc.Sequence) and not isinstance(x, (str, bytes))
          and len(x) == 2 and isinstance(x[0], name_types)
          and not (isinstance(x[0], str) and _is_dtype_string(x[0])))


def _to_named_types(elements) -> list[tuple[str | None, Type]]:
  """`(name, type)` pairs from a StructType's `elements` argument (TFF's rule).

  A single `(name, spec)` pair stands for a one-field structure; namedtuples
  and mappings give their names; otherwise each element is a `(name, spec)`
  pair or an unnamed spec.
  """
  if isinstance(elements, StructType):
    return list(elements.items())
  if isinstance(elements, Type):
    raise TypeError(
        f"StructType expects a list of field types or (name, type) pairs, got the "
        f"single type {elements}; wrap it in a list: StructType([{elements!r}]).")
  if _is_namedtuple(elements):
    elements = list(zip(elements._fields, elements))
  elif _is_name_value_pair(elements):
    elements = [elements]
  elif isinstance(elements, collections.abc.Mapping):
    elements = list(elements.items())
  out = []
  for e in elements:
    if _is_name_value_pair(e):
      out.append((e[0], to_type(e[1])))
    else:
      out.append((None, to_type(e)))
  return out


_RESERVED: dict[type, frozenset] = {}


def _reserved_names(cls: type) -> frozenset:
  if cls not in _RESERVED:
    _RESERVED[cls] = frozenset(dir(cls))
  return _RESERVED[cls]


class StructType(Type):
  """A structure of named or unnamed fields, printed `<a=int32,b=float32>`.

  Fields are read by position (`t[0]`), by name (`t['a']`, or `t.a` as in
  TFF), and iterating gives the field types.

  Args:
    elements: a sequence of types or `(name, type)` pairs, or a mapping from
      names to types. Each type may be anything `to_type` accepts. A single
      `(name, type)` pair is a one-field structure, as in TFF.
    container: the Python container that values of this type are built with
      (`tuple`, `list`, `dict`, a namedtuple, dataclass or attrs class...).
      With a container the result is a `StructWithPythonType`, which is only
      equal to structures with the same container (as in TFF).

  Raises:
    InvalidTypeError: two fields share a name, or a name is reserved (it
      would hide an attribute of the type, such as `items`).

  Example:
    >>> import numpy as np, fedjit
    >>> t = fedjit.StructType([('a', np.int32), ('b', np.float32)])
    >>> str(t), str(t.b)
    ('<a=int32,b=float32>', 'float32')
    >>> repr(fedjit.StructType([np.int32]))
    'StructType([TensorType(np.int32)])'
  """

  def __new__(cls, elements=(), container=None, **kwargs):
    if cls is StructType and container is not None:
      cls = StructWithPythonType
    return object.__new__(cls)

  def __init__(self, elements, container: type | None = None):
    items = tuple(_to_named_types(elements))
    names = [n for n, _ in items if n is not None]
    for n in names:
      if not isinstance(n, str):
        raise InvalidTypeError(f"StructType field names must be strings or None, "
                               f"got {n!r}.")
    if len(set(names)) != len(names):
      raise InvalidTypeError(f"StructType field names must be unique, got {names}.")
    reserved = sorted(set(names) & _reserved_names(type(self)))
    if reserved:
      raise InvalidTypeError(
          f"StructType field names {reserved} are reserved: they would hide the "
          f"type's own attributes (as in TFF, names such as 'items' or "
          f"'python_container' cannot be used). Rename the field(s).")
    self._items = items
    self._container = container

  @property
  def container(self) -> type | None:
    """The Python container values are built with (None for a plain struct)."""
    return self._container

  @property
  def python_container(self) -> type | None:
    """TFF's name for `container`: None for a plain `StructType`."""
    return self._container

  def items(self) -> tuple[tuple[str | None, Type], ...]:
    """The `(name, type)` pairs, in order.

    Example:
      >>> import numpy as np, fedjit
      >>> [(n, str(t)) for n, t in fedjit.StructType([('a', np.int32)]).items()]
      [('a', 'int32')]
    """
    return self._items

  def names(self) -> tuple[str | None, ...]:
    """The field names, in order (`None` for an unnamed field).

    Example:
      >>> import numpy as np, fedjit
      >>> fedjit.StructType([('a', np.int32), np.float32]).names()
      ('a', None)
    """
    return tuple(n for n, _ in self._items)

  def types(self) -> tuple[Type, ...]:
    """The field types, in order.

    Example:
      >>> import numpy as np, fedjit
      >>> [str(t) for t in fedjit.StructType([('a', np.int32), np.float32]).types()]
      ['int32', 'float32']
    """
    return tuple(t for _, t in self._items)

  def children(self) -> Iterator[Type]:
    return iter(self.types())

  def __len__(self) -> int:
    return len(self._items)

  def __iter__(self):
    return iter(self.types())

  def __getitem__(self, key):
    if isinstance(key, str):
      for n, t in self._items:
        if n == key:
          return t
      raise KeyError(f"{self} has no field {key!r}.")
    if isinstance(key, slice):
      return tuple(t for _, t in self._items[key])
    return self._items[key][1]

  def __getattr__(self, name: str):
    # Fields by name, as in TFF (`t.a`). Only called for names that are not
    # attributes; names with underscores are never fields looked up this way
    # while the object is being built or unpickled.
    items = self.__dict__.get("_items")
    if items is None or name.startswith("__"):
      raise AttributeError(name)
    for n, t in items:
      if n == name:
        return t
    raise AttributeError(f"{self} has no field {name!r}; its fields are "
                         f"{[n for n, _ in items if n]}.")

  def index_of(self, name: str) -> int:
    """The position of the field called `name`.

    Raises:
      KeyError: there is no such field (the message lists the fields).

    Example:
      >>> import numpy as np, fedjit
      >>> fedjit.StructType([('a', np.int32), ('b', np.float32)]).index_of('b')
      1
    """
    for i, (n, _) in enumerate(self._items):
      if n == name:
        return i
    raise KeyError(f"{self} has no field {name!r}; its fields are "
                   f"{[n for n in self.names() if n]}.")

  def _members_repr(self) -> str:
    return ", ".join(f"('{n}', {t!r})" if n is not None else repr(t)
                     for n, t in self._items)

  def __repr__(self) -> str:
    return f"StructType([{self._members_repr()}])"

  def _key(self):
    return (self._items, self._container)

  def is_assignable_from(self, other: Type) -> bool:
    if self is other:
      return True
    if not isinstance(other, StructType) or len(other) != len(self):
      return False
    for (target_name, target), (source_name, source) in zip(self._items, other._items):
      # As in TFF: a named source field needs the same name in the target; an
      # unnamed source field fits any target field.
      if source_name is not None and source_name != target_name:
        return False
      if not target.is_assignable_from(source):
        return False
    return True


class StructWithPythonType(StructType):
  """A `StructType` paired with the Python container its values are built with.

  `fedjit.to_type` gives one for lists, tuples, dicts, namedtuples,
  dataclasses and attrs classes; `StructType(elements, container=c)` gives
  one too. Unlike a plain `StructType`, the container takes part in
  equality (as in TFF), but not in assignability.

  Args:
    elements: as for `StructType`.
    container_type: the Python container class (`list`, `dict`, a
      namedtuple class...).

  Example:
    >>> import numpy as np, fedjit
    >>> t = fedjit.StructWithPythonType([np.int32, np.float32], list)
    >>> str(t), repr(t)
    ('<int32,float32>', 'StructType([TensorType(np.int32), TensorType(np.float32)]) as list')
    >>> t == fedjit.StructWithPythonType([np.int32, np.float32], tuple)
    False
    >>> t.is_assignable_from(fedjit.StructWithPythonType([np.int32, np.float32], tuple))
    True
  """

  def __init__(self, elements, container_type: type | None = None, *,
               container: type | None = None):
    c = container_type if container_type is not None else container
    if c is None:
      raise TypeError("StructWithPythonType needs a container type, e.g. "
                      "StructWithPythonType([np.int32], list); use StructType for a "
                      "structure without one.")
    super().__init__(elements, c)

  def __repr__(self) -> str:
    return f"StructType([{self._members_repr()}]) as {self._container.__name__}"


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


class AbstractType(Type):
  """A type variable, printed by its label (`T`), as in TFF's type signatures.

  All occurrences of a label in one signature stand for the same concrete
  type, e.g. `federated_map`'s `(<(T -> U),{T}@CLIENTS> -> {U}@CLIENTS)`.
  fedjit computations are declared with concrete types (or inferred
  ones), so abstract types only describe signatures; asking whether one is
  assignable raises.

  Args:
    label: the variable's name.

  Example:
    >>> import numpy as np, fedjit
    >>> T = fedjit.AbstractType('T')
    >>> str(fedjit.FunctionType(fedjit.FederatedType(T, fedjit.CLIENTS), T))
    '({T}@CLIENTS -> T)'
    >>> repr(T)
    "AbstractType('T')"
  """

  def __init__(self, label: str):
    if not isinstance(label, str):
      raise TypeError(f"AbstractType expects a string label such as 'T', got {label!r}.")
    self.label = label

  def __repr__(self) -> str:
    return f"AbstractType('{self.label}')"

  def _key(self):
    return (self.label,)

  def is_assignable_from(self, other: Type) -> bool:
    raise TypeError(
        f"Abstract types are not comparable: {self} stands for a type that is "
        f"only known once a signature is applied. Compare concrete types.")


class PlacementType(Type):
  """The type of placement literals (`fedjit.SERVER`, `fedjit.CLIENTS`),
  printed `placement`. There is one placement type.

  Example:
    >>> import fedjit
    >>> str(fedjit.PlacementType()), fedjit.PlacementType() is fedjit.PlacementType()
    ('placement', True)
  """

  def __init__(self):
    pass

  def __repr__(self) -> str:
    return "PlacementType()"

  def _key(self):
    return ()

  def is_assignable_from(self, other: Type) -> bool:
    return isinstance(other, PlacementType)


_STRING_DTYPES: dict[str, bool] = {}


def _is_dtype_string(x: str) -> bool:
  """A dtype's name ('float32', 'int32', 'bool', 'bfloat16'), not a code like 'a'."""
  if x not in _STRING_DTYPES:
    try:
      with warnings.catch_warnings():  # NumPy warns for deprecated codes such as 'a'
        warnings.simplefilter("ignore")
        _STRING_DTYPES[x] = np.dtype(x).name == x
    except TypeError:
      _STRING_DTYPES[x] = False
  return _STRING_DTYPES[x]


def _is_dtype_like(x) -> bool:
  if isinstance(x, str):
    return _is_dtype_string(x)
  if isinstance(x, np.dtype) or (isinstance(x, type) and issubclass(x, np.generic)):
    return True
  # jnp.float32 and friends are scalar-type objects with a `dtype` attribute.
  dt = getattr(x, "dtype", None)
  return callable(x) and isinstance(dt, np.dtype) and not hasattr(x, "shape")


def _is_shape_like(x) -> bool:
  return isinstance(x, (list, tuple)) and all(
      d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool))
      for d in x)


def _is_tensor_spec(x) -> bool:
  """A `(dtype, shape)` pair such as `(np.float32, [None, 784])`."""
  return (isinstance(x, tuple) and not _is_namedtuple(x) and len(x) == 2 and
          _is_dtype_like(x[0]) and _is_shape_like(x[1]))


def _is_namedtuple(x) -> bool:
  return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_namedtuple_class(x) -> bool:
  return isinstance(x, type) and issubclass(x, tuple) and hasattr(x, "_fields")


def _is_attrs_class(c) -> bool:
  return isinstance(c, type) and getattr(c, "__attrs_attrs__", None) is not None


def _is_dataclass_class(c) -> bool:
  return isinstance(c, type) and dataclasses.is_dataclass(c)


def _record_fields(c: type) -> list[str]:
  """Field names of an attrs class or dataclass, in order."""
  if _is_attrs_class(c):
    return [a.name for a in c.__attrs_attrs__]
  return [f.name for f in dataclasses.fields(c)]


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


def _string_representation(type_spec: Type, formatted: bool) -> str:
  """TFF's compact (one line) or formatted (indented) form of a type."""

  def combine(components):
    lines = [""]
    for component in components:
      lines[-1] = lines[-1] + component[0]
      lines.extend(component[1:])
    return lines

  def indent(lines):
    return ["  " + e for e in lines]

  def lines_for_named_types(items):
    lines = []
    for index, (name, t) in enumerate(items):
      if index != 0:
        lines.append([",", ""] if formatted else [","])
      element_lines = lines_for_type(t)
      if name is not None:
        element_lines = combine([[f"{name}="], element_lines])
      lines.append(element_lines)
    return combine(lines)

  def lines_for_type(t):
    if isinstance(t, AbstractType):
      return [t.label]
    if isinstance(t, FederatedType):
      member_lines = lines_for_type(t.member)
      placement_line = f"@{t.placement}"
      if t.all_equal:
        return combine([member_lines, [placement_line]])
      return combine([["{"], member_lines, ["}"], [placement_line]])
    if isinstance(t, FunctionType):
      parameter_lines = [""] if t.parameter is None else lines_for_type(t.parameter)
      return combine([["("], parameter_lines, [" -> "], lines_for_type(t.result), [")"]])
    if isinstance(t, StructType):
      if not len(t):
        return ["<>"]
      elements_lines = lines_for_named_types(t.items())
      if formatted:
        return combine([["<", ""], indent(elements_lines), ["", ">"]])
      return combine([["<"], elements_lines, [">"]])
    if isinstance(t, PlacementType):
      return ["placement"]
    if isinstance(t, SequenceType):
      return combine([lines_for_type(t.element), ["*"]])
    if isinstance(t, TensorType):
      if not t.shape:
        return [t.dtype.name]
      dims = ",".join("?" if d is None else str(d) for d in t.shape)
      return [f"{t.dtype.name}[{dims}]"]
    raise NotImplementedError(f"Unexpected type found: {type(t)}.")

  lines = [line.rstrip() for line in lines_for_type(type_spec)]
  return "\n".join(lines) if formatted else "".join(lines)


# The conversions between Python values and types live in _type_conversions;
# imported here (after the classes they build) so `_types.to_type` and the
# rest keep working for the modules that import them from here.
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


from fedjit.core._type_conversions import (  # noqa: E402
    _PY_SCALARS, _annotated_fields, build_container, infer_type, struct_fields,
    to_type)
