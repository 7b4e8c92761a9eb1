"""The `Type` base class (interning, equality, assignability, printing) and the
leaf types: `TensorType`, `AbstractType` and `PlacementType`.

Types print exactly as TFF prints them, compare by value, are hashable, and
equal types are one object (TFF's interning). Each class prints itself
(`_representation_lines`), so the composite types in `_struct_types` and
`_types` add their own forms.
"""

from __future__ import annotations

import weakref
from typing import Iterable, Iterator

import numpy as np

from fedjit.core._errors import TypeNotAssignableError, TypesNotEquivalentError
from fedjit.core._type_specs import _dtype

__all__ = ["Type", "TensorType", "AbstractType", "PlacementType"]


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


def _combine(components: list[list[str]]) -> list[str]:
  """Joins line blocks: each block's first line continues the previous line."""
  lines = [""]
  for component in components:
    lines[-1] = lines[-1] + component[0]
    lines.extend(component[1:])
  return lines


def _indent(lines: list[str]) -> list[str]:
  return ["  " + e for e in lines]


def _string_representation(type_spec: "Type", formatted: bool) -> str:
  """TFF's compact (one line) or formatted (indented) form of a type."""
  lines = [line.rstrip() for line in type_spec._representation_lines(formatted)]
  return "\n".join(lines) if formatted else "".join(lines)


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

  def _representation_lines(self, formatted: bool) -> list[str]:
    """This type's printed form, as lines (one unless `formatted`)."""
    raise NotImplementedError(f"Unexpected type found: {type(self)}.")

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

  def _representation_lines(self, formatted: bool) -> list[str]:
    if not self.shape:
      return [self.dtype.name]
    dims = ",".join("?" if d is None else str(d) for d in self.shape)
    return [f"{self.dtype.name}[{dims}]"]

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, TensorType) or other.dtype != self.dtype:
      return False
    if len(other.shape) != len(self.shape):
      return False
    return all(a is None or a == b for a, b in zip(self.shape, other.shape))



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

  def _representation_lines(self, formatted: bool) -> list[str]:
    return [self.label]

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

  def _representation_lines(self, formatted: bool) -> list[str]:
    return ["placement"]

  def _key(self):
    return ()

  def is_assignable_from(self, other: Type) -> bool:
    return isinstance(other, PlacementType)
