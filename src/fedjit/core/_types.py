"""Federated types: tensors, structures, sequences, placed values, functions.

Types print exactly as TFF prints them, compare by value and are hashable:

  >>> import numpy as np, fedjit
  >>> str(fedjit.TensorType(np.float32, [None, 784]))
  'float32[?,784]'
  >>> str(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  '{float32}@CLIENTS'
"""

from __future__ import annotations

import collections
from typing import Any, Iterable, Sequence as PySequence

import jax
import numpy as np

from fedjit.core._placements import CLIENTS, SERVER, Placement

__all__ = [
    "Type",
    "TensorType",
    "StructType",
    "SequenceType",
    "FederatedType",
    "FunctionType",
    "to_type",
    "infer_type",
]


class Type:
  """Base class of all fedjit types."""

  def compact_str(self) -> str:
    raise NotImplementedError

  def __str__(self) -> str:
    return self.compact_str()

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self.compact_str()!r})"

  def _key(self):
    raise NotImplementedError

  def __eq__(self, other) -> bool:
    return type(other) is type(self) and self._key() == other._key()

  def __hash__(self) -> int:
    return hash((type(self).__name__, self._key()))

  def is_assignable_from(self, other: "Type") -> bool:
    """Whether a value of type `other` may be used where `self` is expected.

    `?` dimensions accept any size, and `{T}@CLIENTS` accepts `T@CLIENTS`.

    Example:
      >>> import numpy as np, fedjit
      >>> t = fedjit.TensorType(np.float32, [None, 2])
      >>> t.is_assignable_from(fedjit.TensorType(np.float32, [5, 2]))
      True
    """
    raise NotImplementedError


def _dtype(spec) -> np.dtype:
  try:
    return np.dtype(spec)
  except TypeError as e:
    raise TypeError(
        f"Expected a dtype (such as np.float32, jnp.int32 or 'float32'), "
        f"got {spec!r}.") from e


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

  def compact_str(self) -> str:
    if not self.shape:
      return self.dtype.name
    dims = ",".join("?" if d is None else str(d) for d in self.shape)
    return f"{self.dtype.name}[{dims}]"

  def _key(self):
    return (self.dtype.name, self.shape)

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, TensorType) or other.dtype != self.dtype:
      return False
    if len(other.shape) != len(self.shape):
      return False
    return all(a is None or a == b for a, b in zip(self.shape, other.shape))


class StructType(Type):
  """A structure of named or unnamed fields, printed `<a=int32,b=float32>`.

  Args:
    elements: a sequence of types or `(name, type)` pairs, or a mapping from
      names to types. Each type may be anything `to_type` accepts.
    container: the Python container that values of this type are built with
      (`tuple`, `list`, `dict`, a namedtuple class...). It does not take part
      in equality.

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.StructType([('a', np.int32), ('b', np.float32)]))
    '<a=int32,b=float32>'
  """

  def __init__(self, elements, container: type | None = None):
    if isinstance(elements, collections.abc.Mapping):
      items = list(elements.items())
    else:
      items = []
      for e in elements:
        if (isinstance(e, tuple) and len(e) == 2 and
            (e[0] is None or isinstance(e[0], str))):
          items.append(e)
        else:
          items.append((None, e))
    self._items = tuple((n, to_type(t)) for n, t in items)
    names = [n for n, _ in self._items if n is not None]
    if len(set(names)) != len(names):
      raise ValueError(f"StructType field names must be unique, got {names}.")
    self.container = container

  def items(self) -> tuple[tuple[str | None, Type], ...]:
    """The `(name, type)` pairs, in order."""
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
    return self._items[key][1]

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

  def compact_str(self) -> str:
    parts = [(f"{n}={t}" if n is not None else str(t)) for n, t in self._items]
    return "<" + ",".join(parts) + ">"

  def _key(self):
    return self._items

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, StructType) or len(other) != len(self):
      return False
    for (n1, t1), (n2, t2) in zip(self._items, other._items):
      if n1 is not None and n2 is not None and n1 != n2:
        return False
      if not t1.is_assignable_from(t2):
        return False
    return True


class SequenceType(Type):
  """A sequence (a client's dataset) of elements, printed `T*`.

  Example:
    >>> import numpy as np, fedjit
    >>> t = fedjit.SequenceType((fedjit.TensorType(np.float32, [None, 784]),
    ...                          fedjit.TensorType(np.int32, [None, 1])))
    >>> str(t)
    '<float32[?,784],int32[?,1]>*'
  """

  def __init__(self, element):
    self.element = to_type(element)
    if isinstance(self.element, (FederatedType, FunctionType, SequenceType)):
      raise TypeError(
          f"A sequence's elements must be tensors or structures of tensors, "
          f"got {self.element}.")

  def compact_str(self) -> str:
    return f"{self.element}*"

  def _key(self):
    return self.element

  def is_assignable_from(self, other: Type) -> bool:
    return (isinstance(other, SequenceType) and
            self.element.is_assignable_from(other.element))


class FederatedType(Type):
  """A value placed at `SERVER` or `CLIENTS`: `{T}@CLIENTS`, `T@SERVER`.

  Args:
    member: the type of each member (anything `to_type` accepts).
    placement: `fedjit.SERVER` or `fedjit.CLIENTS`.
    all_equal: whether all members are equal. Defaults to True at SERVER and
      False at CLIENTS. An all-equal value prints without braces.

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.FederatedType(np.float32, fedjit.SERVER))
    'float32@SERVER'
  """

  def __init__(self, member, placement: Placement, all_equal: bool | None = None):
    if not isinstance(placement, Placement):
      raise TypeError(
          f"FederatedType expects a placement (fedjit.SERVER or fedjit.CLIENTS) "
          f"as its second argument, got {placement!r}.")
    self.member = to_type(member)
    if isinstance(self.member, FederatedType):
      raise TypeError(f"A federated type cannot hold another federated type "
                      f"({self.member}).")
    self.placement = placement
    self.all_equal = (placement == SERVER) if all_equal is None else bool(all_equal)

  def compact_str(self) -> str:
    if self.all_equal:
      return f"{self.member}@{self.placement}"
    return f"{{{self.member}}}@{self.placement}"

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
  """

  def __init__(self, parameter, result):
    self.parameter = None if parameter is None else to_type(parameter)
    self.result = to_type(result)

  def compact_str(self) -> str:
    p = "" if self.parameter is None else str(self.parameter)
    return f"({p} -> {self.result})"

  def _key(self):
    return (self.parameter, self.result)

  def is_assignable_from(self, other: Type) -> bool:
    if not isinstance(other, FunctionType):
      return False
    if (self.parameter is None) != (other.parameter is None):
      return False
    if self.parameter is not None and not other.parameter.is_assignable_from(
        self.parameter):
      return False
    return self.result.is_assignable_from(other.result)


def _is_dtype_like(x) -> bool:
  if isinstance(x, (np.dtype, str)) or (isinstance(x, type) and
                                        issubclass(x, np.generic)):
    try:
      np.dtype(x)
      return True
    except TypeError:
      return False
  # jnp.float32 and friends are scalar-type objects with a `dtype` attribute.
  dt = getattr(x, "dtype", None)
  return callable(x) and isinstance(dt, np.dtype) and not hasattr(x, "shape")


def _is_shape_like(x) -> bool:
  return isinstance(x, (list, tuple)) and all(
      d is None or isinstance(d, (int, np.integer)) for d in x)


def _is_namedtuple(x) -> bool:
  return isinstance(x, tuple) and hasattr(type(x), "_fields")


def to_type(spec: Any) -> Type:
  """Converts a type specification into a fedjit `Type`.

  Accepted: a `Type`; a dtype (`np.float32`, `jnp.int32`, `'float32'`); a
  `(dtype, shape)` pair; anything with `dtype` and `shape` (a
  `jax.ShapeDtypeStruct`, a NumPy or JAX array); and tuples, lists, dicts and
  namedtuples of these (a pytree), which become `StructType`s.

  Example:
    >>> import jax, numpy as np, fedjit
    >>> str(fedjit.to_type([jax.ShapeDtypeStruct((784, 10), np.float32),
    ...                     jax.ShapeDtypeStruct((10,), np.float32)]))
    '<float32[784,10],float32[10]>'
  """
  if isinstance(spec, Type):
    return spec
  if _is_dtype_like(spec):
    return TensorType(_dtype(spec))
  if hasattr(spec, "dtype") and hasattr(spec, "shape") and not isinstance(
      spec, (list, tuple, dict)):
    return TensorType(spec.dtype, tuple(spec.shape))
  if (isinstance(spec, tuple) and not _is_namedtuple(spec) and len(spec) == 2 and
      _is_dtype_like(spec[0]) and _is_shape_like(spec[1])):
    return TensorType(_dtype(spec[0]), spec[1])
  if _is_namedtuple(spec):
    return StructType([(n, to_type(v)) for n, v in zip(spec._fields, spec)],
                      container=type(spec))
  if isinstance(spec, collections.abc.Mapping):
    return StructType([(str(k), to_type(v)) for k, v in spec.items()],
                      container=type(spec))
  if isinstance(spec, (list, tuple)):
    return StructType([to_type(v) for v in spec], container=type(spec))
  raise TypeError(
      f"Cannot interpret {spec!r} (of Python type {type(spec).__name__}) as a "
      f"fedjit type. Expected a fedjit Type, a dtype such as np.float32, a "
      f"(dtype, shape) pair, a jax.ShapeDtypeStruct, or a tuple/list/dict of "
      f"these.")


_PY_SCALARS = {bool: np.bool_, int: np.int32, float: np.float32}


def infer_type(value: Any) -> Type:
  """The type of a concrete value (arrays, Python scalars, pytrees of them).

  Python floats are `float32` and ints `int32`, as in JAX's default mode.

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.infer_type({'w': np.zeros((2, 3), np.float32), 'n': 3}))
    '<w=float32[2,3],n=int32>'
  """
  if isinstance(value, Type):
    raise TypeError(f"Expected a value, got the type {value}.")
  for py, dt in _PY_SCALARS.items():
    if type(value) is py:
      return TensorType(dt)
  if hasattr(value, "dtype") and hasattr(value, "shape"):
    # As JAX computes it: 64-bit only in JAX's 64-bit mode.
    dt = np.dtype(jax.dtypes.canonicalize_dtype(value.dtype))
    return TensorType(dt, tuple(value.shape))
  if _is_namedtuple(value):
    return StructType([(n, infer_type(v)) for n, v in zip(value._fields, value)],
                      container=type(value))
  if isinstance(value, collections.abc.Mapping):
    return StructType([(str(k), infer_type(v)) for k, v in value.items()],
                      container=type(value))
  if isinstance(value, (list, tuple)):
    return StructType([infer_type(v) for v in value], container=type(value))
  raise TypeError(
      f"Cannot infer a fedjit type for {value!r} of Python type "
      f"{type(value).__name__}; expected arrays, Python numbers, or "
      f"tuples/lists/dicts of them.")


def check_no_placement_in(t: Type) -> bool:
  """True if `t` contains no FederatedType or FunctionType."""
  if isinstance(t, (FederatedType, FunctionType)):
    return False
  if isinstance(t, StructType):
    return all(check_no_placement_in(e) for e in t.types())
  if isinstance(t, SequenceType):
    return check_no_placement_in(t.element)
  return True


def build_container(t: StructType, values: PySequence[Any]):
  """Builds a Python value of struct type `t` from its field values."""
  names = t.names()
  c = t.container
  if c is not None and hasattr(c, "_fields"):
    return c(*values)
  if c is not None and issubclass(c, collections.abc.Mapping):
    return c(zip(names, values))
  if c in (list, tuple):
    return c(values)
  if names and all(n is not None for n in names):
    return dict(zip(names, values))
  if any(n is not None for n in names):
    return collections.OrderedDict(
        (n if n is not None else f"_{i}", v)
        for i, (n, v) in enumerate(zip(names, values)))
  return tuple(values)


def struct_fields(t: StructType, value: Any) -> list[Any]:
  """Splits a Python value of struct type `t` into its field values.

  Raises a TypeError saying what was expected when the value does not fit.
  """
  names = t.names()
  if isinstance(value, collections.abc.Mapping):
    if not all(n is not None for n in names):
      raise TypeError(f"Expected a tuple or list for {t}, got a dict with keys "
                      f"{list(value)}.")
    if set(map(str, value)) != set(names):
      raise TypeError(f"Expected a structure {t} with fields {list(names)}, got "
                      f"fields {list(value)}.")
    lookup = {str(k): v for k, v in value.items()}
    return [lookup[n] for n in names]
  if _is_namedtuple(value) or isinstance(value, (list, tuple)):
    if len(value) != len(t):
      raise TypeError(f"Expected a structure of {len(t)} fields for {t}, got "
                      f"{len(value)} fields.")
    return list(value)
  raise TypeError(f"Expected a structure {t} (a tuple, list or dict), got "
                  f"{type(value).__name__}.")
