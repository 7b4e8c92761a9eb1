"""Struct types (`StructType`, `StructWithPythonType`) and `to_type`, which
reads a type spec: the two call each other (a struct's fields are specs).
"""

from __future__ import annotations

import collections
from typing import Any, Iterator

from fedjit.core._errors import InvalidTypeError
from fedjit.core._structure import Struct, to_elements
from fedjit.core._type_base import TensorType, Type, _combine, _indent
from fedjit.core._type_specs import (_annotated_fields, _dtype, _is_attrs_class,
                                     _is_dataclass_class, _is_dtype_like,
                                     _is_name_value_pair, _is_namedtuple,
                                     _is_namedtuple_class, _is_tensor_spec,
                                     _record_fields)

__all__ = ["StructType", "StructWithPythonType", "to_type"]


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

  def _representation_lines(self, formatted: bool) -> list[str]:
    if not len(self):
      return ["<>"]
    fields = []
    for index, (name, t) in enumerate(self._items):
      if index != 0:
        fields.append([",", ""] if formatted else [","])
      element_lines = t._representation_lines(formatted)
      if name is not None:
        element_lines = _combine([[f"{name}="], element_lines])
      fields.append(element_lines)
    elements_lines = _combine(fields)
    if formatted:
      return _combine([["<", ""], _indent(elements_lines), ["", ">"]])
    return _combine([["<"], elements_lines, [">"]])

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



def to_type(spec: Any) -> Type:
  """Converts a type specification into a fedjit `Type` (TFF's `to_type`).

  Accepted:

  * a `Type`;
  * a dtype: `np.float32`, `jnp.int32`, `np.dtype('int32')` or a dtype name
    such as `'float32'`;
  * a `(dtype, shape)` pair: `(np.float32, [None, 784])` is `float32[?,784]`;
  * anything with `dtype` and `shape` (a `jax.ShapeDtypeStruct`, an array);
  * a list or tuple of specs, `(name, spec)` pairs, or both: a list with a
    `(name, spec)` pair is a plain named `StructType`
    (`[('a', np.int32), ('b', np.float32)]` is `<a=int32,b=float32>`), a
    single pair `('a', np.int32)` is `<a=int32>`, and otherwise the list or
    tuple is kept as the container of a `StructWithPythonType`;
  * a dict, namedtuple, dataclass or attrs instance whose fields hold specs;
  * a `typing.NamedTuple`, dataclass or attrs class whose field annotations
    are specs (Python `int`, `float`, `bool` mean int32, float32, bool).

  Raises:
    TypeError: `spec` is none of these (the message lists what is accepted).

  Example:
    >>> import jax, numpy as np, fedjit
    >>> str(fedjit.to_type([jax.ShapeDtypeStruct((784, 10), np.float32),
    ...                     jax.ShapeDtypeStruct((10,), np.float32)]))
    '<float32[784,10],float32[10]>'
    >>> str(fedjit.to_type([('x', np.int32), ('y', (np.float32, [2]))]))
    '<x=int32,y=float32[2]>'
  """
  if isinstance(spec, Type):
    return spec
  if isinstance(spec, Struct):
    return StructType(to_elements(spec))
  if _is_dtype_like(spec):
    return TensorType(_dtype(spec))
  if (hasattr(spec, "dtype") and hasattr(spec, "shape") and not isinstance(spec, type)
      and not isinstance(spec, (list, tuple, dict))):
    return TensorType(spec.dtype, tuple(spec.shape))
  if _is_tensor_spec(spec):
    return TensorType(_dtype(spec[0]), spec[1])
  if _is_namedtuple(spec):
    return StructType(list(zip(spec._fields, spec)), container=type(spec))
  if isinstance(spec, (list, tuple)):
    if any(_is_name_value_pair(e, str) for e in spec):
      # Named fields: a plain structure, without the Python container (TFF).
      return StructType(spec)
    return StructType(spec, container=type(spec))
  if isinstance(spec, collections.abc.Mapping):
    return StructType([(str(k), v) for k, v in spec.items()], container=type(spec))
  if _is_attrs_class(type(spec)) or _is_dataclass_class(type(spec)):
    return StructType([(n, getattr(spec, n)) for n in _record_fields(type(spec))],
                      container=type(spec))
  if _is_namedtuple_class(spec) or _is_attrs_class(spec) or _is_dataclass_class(spec):
    return StructType(_annotated_fields(spec), container=spec)
  raise TypeError(
      f"Cannot interpret {spec!r} (of Python type {type(spec).__name__}) as a "
      f"fedjit type. Expected a fedjit Type, a dtype such as np.float32, a "
      f"(dtype, shape) pair, a jax.ShapeDtypeStruct, a list/tuple/dict of "
      f"these or of (name, spec) pairs, or a namedtuple, dataclass or attrs "
      f"instance or class whose fields are these.")
