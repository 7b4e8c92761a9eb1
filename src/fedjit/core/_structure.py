"""`Struct`: a structure with named and/or unnamed fields (TFF's `structure`).

A `Struct` is the Python value of a fedjit `StructType` that has no Python
container (e.g. the type `<a=int32,b=float32>` declared as
`[('a', np.int32), ('b', np.float32)]`). Its fields are read by position, by
name or as attributes, and it is a JAX pytree (children in field order, the
names in the aux data), so it flows through `jax.jit`, `jax.tree_util` and
optax unchanged:

  >>> import jax, fedjit
  >>> s = fedjit.structure.Struct([('a', 1), (None, 2), ('b', 3)])
  >>> s.a, s[1], s['b'], len(s)
  (1, 2, 3, 3)
  >>> str(s)
  '<a=1,2,b=3>'
  >>> jax.tree_util.tree_map(lambda x: x * 10, s)
  Struct([('a', 10), (None, 20), ('b', 30)])

The module functions (`to_elements`, `to_odict`, `from_container`,
`map_structure`, ...) are TFF's, with TFF's semantics.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Optional, TypeVar, Union

import jax

__all__ = [
    "Struct", "name_list", "name_list_with_nones", "to_elements", "iter_elements",
    "to_odict", "to_odict_or_tuple", "flatten", "pack_sequence_as",
    "is_same_structure", "map_structure", "from_container", "has_field",
    "update_struct",
]

_T = TypeVar("_T")


def _is_name_value_pair(e) -> bool:
  return (isinstance(e, (tuple, list)) and len(e) == 2 and
          (e[0] is None or isinstance(e[0], str)))


def _is_namedtuple(x) -> bool:
  return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_attrs(x) -> bool:
  return getattr(type(x), "__attrs_attrs__", None) is not None


def _is_dataclass(x) -> bool:
  return dataclasses.is_dataclass(x) and not isinstance(x, type)


def _record_dict(x) -> dict:
  """The top-level fields of an attrs or dataclass instance, in order."""
  if _is_attrs(x):
    return {a.name: getattr(x, a.name) for a in type(x).__attrs_attrs__}
  return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}


class Struct(Generic[_T]):
  """A structure with named and/or unnamed fields, in order (TFF's `Struct`).

  Like a namedtuple, fields are read by index or name, but one class serves
  every structure. Names are optional (`None`), unique, and may not be
  `_asdict` or an internal slot name.

  Equality compares the values and the names in order (a `Struct` never
  equals a dict or tuple, as in TFF); `hash` works when the values hash.

  Example:
    >>> x = Struct([('foo', 10), (None, 20), ('bar', 30)])
    >>> x[0], x[1], x.foo, x['bar'], list(x), sorted(dir(x))
    (10, 20, 10, 30, [10, 20, 30], ['bar', 'foo'])
    >>> Struct.named(a=1, b=2) == Struct([('a', 1), ('b', 2)])
    True

  Args:
    elements: an iterable of `(name, value)` pairs; `name` is a `str` or
      `None`.

  Raises:
    TypeError: an element is not a `(name, value)` pair.
    ValueError: a name is repeated or reserved.
  """

  __slots__ = ("_hash", "_element_array", "_name_to_index", "_name_array",
               "_elements_cache")

  @classmethod
  def named(cls, **kwargs: _T) -> "Struct":
    """A `Struct` whose fields are all named: `Struct.named(a=1, b=2)`."""
    return cls(tuple(kwargs.items()))

  @classmethod
  def unnamed(cls, *args: _T) -> "Struct":
    """A `Struct` whose fields are all unnamed: `Struct.unnamed(1, 2)`."""
    return cls(tuple((None, v) for v in args))

  def __init__(self, elements: Iterable[tuple[Optional[str], _T]]):
    elements = list(elements) if not isinstance(elements, (list, tuple)) else elements
    values, names, name_to_index = [], [], {}
    reserved = frozenset(("_asdict",) + Struct.__slots__)
    for idx, e in enumerate(elements):
      if not _is_name_value_pair(e):
        raise TypeError(
            f"Expected every item on the list to be a pair in which the first "
            f"element is a string, found {e!r}. Build a Struct from (name, value) "
            f"pairs, e.g. Struct([('a', 1), (None, 2)]), or use "
            f"Struct.unnamed(1, 2) / Struct.named(a=1).")
      name, value = e
      if name in reserved:
        raise ValueError(f"The names in {sorted(reserved)} are reserved. You passed "
                         f"the name {name}.")
      if name in name_to_index:
        raise ValueError(f"`Struct` does not support duplicated names, found "
                         f"{[n for n, _ in elements]}.")
      names.append(name)
      values.append(value)
      if name is not None:
        name_to_index[name] = idx
    object.__setattr__(self, "_element_array", tuple(values))
    object.__setattr__(self, "_name_to_index", name_to_index)
    object.__setattr__(self, "_name_array", names)
    object.__setattr__(self, "_hash", None)
    object.__setattr__(self, "_elements_cache", None)

  def _elements(self) -> list:
    if self._elements_cache is None:
      object.__setattr__(self, "_elements_cache",
                         list(zip(self._name_array, self._element_array)))
    return self._elements_cache

  def __len__(self) -> int:
    return len(self._element_array)

  def __iter__(self) -> Iterator[_T]:
    return iter(self._element_array)

  def __dir__(self) -> list[str]:
    return list(self._name_to_index.keys())

  def __getitem__(self, key: Union[int, str, slice]) -> _T:
    if isinstance(key, str):
      return self.__getattr__(key)
    if isinstance(key, int) and not isinstance(key, bool):
      if key < 0 or key >= len(self._element_array):
        raise IndexError(f"Element index {key} is out of range, `Struct` has "
                         f"{len(self._element_array)} elements.")
    return self._element_array[key]

  def __getattr__(self, name: str) -> _T:
    if name.startswith("__") or name in Struct.__slots__:
      raise AttributeError(name)
    if name not in self._name_to_index:
      raise AttributeError(
          f"The `Struct` of length {len(self._element_array):d} does not have named "
          f"field \"{name!s}\". Fields (up to first 10): "
          f"{list(self._name_to_index.keys())[:10]!s}")
    return self._element_array[self._name_to_index[name]]

  def __setattr__(self, name, value):
    raise AttributeError(f"A Struct is immutable; cannot set {name!r}. Build a new "
                         f"one with fedjit.structure.update_struct(s, {name}=...).")

  def __getstate__(self):
    return (tuple(self._name_array), self._element_array)

  def __setstate__(self, state):
    names, values = state
    Struct.__init__(self, list(zip(names, values)))

  def __reduce__(self):
    return (Struct, (self._elements(),))

  def __eq__(self, other: object) -> bool:
    if self is other:
      return True
    if not isinstance(other, Struct):
      return NotImplemented
    return ((self._element_array, self._name_array) ==
            (other._element_array, other._name_array))

  def __ne__(self, other: object) -> bool:
    return not self == other

  def __repr__(self) -> str:
    return "Struct([{}])".format(
        ", ".join(f"({n!r}, {v!r})" for n, v in iter_elements(self)))

  def __str__(self) -> str:
    return "<{}>".format(",".join(f"{n}={v}" if n is not None else str(v)
                                  for n, v in iter_elements(self)))

  def __hash__(self) -> int:
    if self._hash is None:
      object.__setattr__(self, "_hash", hash(
          ("Struct", self._element_array, tuple(self._name_array))))
    return self._hash

  def _asdict(self, recursive: bool = False) -> collections.OrderedDict:
    """The fields as an `OrderedDict` (every field must be named)."""
    return to_odict(self, recursive=recursive)


jax.tree_util.register_pytree_node(
    Struct,
    lambda s: (s._element_array, tuple(s._name_array)),
    lambda names, children: Struct(list(zip(names, children))))


def name_list(struct: Struct) -> list[str]:
  """The names of the named fields, in order (unnamed ones skipped).

  Example:
    >>> name_list(Struct([('a', 1), (None, 2), ('b', 3)]))
    ['a', 'b']
  """
  return [n for n in struct._name_array if n is not None]


def name_list_with_nones(struct: Struct) -> list[Optional[str]]:
  """The names of all fields, `None` for unnamed ones.

  Example:
    >>> name_list_with_nones(Struct([('a', 1), (None, 2)]))
    ['a', None]
  """
  return list(struct._name_array)


def to_elements(struct: Struct[_T]) -> list[tuple[Optional[str], _T]]:
  """The `(name, value)` pairs of a `Struct` (a new list).

  Example:
    >>> to_elements(Struct([('a', 1), (None, 2)]))
    [('a', 1), (None, 2)]
  """
  _check_struct(struct, "to_elements")
  return struct._elements().copy()


def iter_elements(struct: Struct[_T]) -> Iterator[tuple[Optional[str], _T]]:
  """An iterator over the `(name, value)` pairs of a `Struct`.

  Example:
    >>> list(iter_elements(Struct([('a', 1)])))
    [('a', 1)]
  """
  _check_struct(struct, "iter_elements")
  return iter(struct._elements())


def _check_struct(x, fn: str) -> None:
  if not isinstance(x, Struct):
    raise TypeError(f"fedjit.structure.{fn} expects a Struct, got {type(x).__name__} "
                    f"({x!r}). Convert containers with "
                    f"fedjit.structure.from_container first.")


def _to_container_recursive(value: Struct, container_fn: Callable) -> Any:
  def recurse(v):
    return _to_container_recursive(v, container_fn) if isinstance(v, Struct) else v
  return container_fn([(k, recurse(v)) for k, v in iter_elements(value)])


def to_odict(struct: Struct[_T], recursive: bool = False) -> collections.OrderedDict:
  """`struct` as an `OrderedDict` (every field must be named).

  Example:
    >>> dict(to_odict(Struct([('a', 1), ('b', 2)])))
    {'a': 1, 'b': 2}

  Raises:
    ValueError: a field has no name.
  """
  def _to_odict(elements):
    for name, _ in elements:
      if name is None:
        raise ValueError(f"Cannot convert an `Struct` with unnamed entries to a "
                         f"`collections.OrderedDict`: {struct}")
    return collections.OrderedDict(elements)
  if recursive:
    return _to_container_recursive(struct, _to_odict)
  return _to_odict(to_elements(struct))


def to_odict_or_tuple(struct: Struct[_T], recursive: bool = True
                      ) -> Union[collections.OrderedDict, tuple]:
  """`struct` as an `OrderedDict` (all fields named) or `tuple` (none named).

  Example:
    >>> t = to_odict_or_tuple(Struct([(None, 1), (None, Struct([('a', 2)]))]))
    >>> t[0], dict(t[1])
    (1, {'a': 2})

  Raises:
    ValueError: `struct` (or, with `recursive`, a nested `Struct`) mixes
      named and unnamed fields.
  """
  def _convert(elements):
    named = tuple(n is not None for n, _ in elements)
    if any(named):
      if not all(named):
        raise ValueError(f"Cannot convert a `Struct` with both named and unnamed "
                         f"entries to an collections.OrderedDict or tuple: {struct!r}")
      return collections.OrderedDict(elements)
    return tuple(v for _, v in elements)
  if recursive:
    return _to_container_recursive(struct, _convert)
  return _convert(to_elements(struct))


def _tree_leaves(x) -> list:
  return jax.tree_util.tree_leaves(x, is_leaf=lambda v: v is None)


def flatten(struct: object) -> list:
  """The leaves of a (possibly nested) `Struct`, in field order.

  Non-`Struct` values are flattened as JAX pytrees (dicts in sorted key
  order, as TFF's `tree.flatten`).

  Example:
    >>> flatten(Struct([('a', 1), ('b', Struct([(None, 2), (None, 3)]))]))
    [1, 2, 3]
  """
  if not isinstance(struct, Struct):
    return _tree_leaves(struct)
  out = []
  for _, v in iter_elements(struct):
    out.extend(flatten(v))
  return out


def pack_sequence_as(structure: Struct, flat_sequence: list) -> Struct:
  """A `Struct` nested as `structure` holding `flat_sequence` as its leaves.

  Example:
    >>> pack_sequence_as(Struct([('a', 0), ('b', Struct([(None, 0)]))]), [5, 6])
    Struct([('a', 5), ('b', Struct([(None, 6)]))])

  Raises:
    TypeError: `structure` holds a list, dict, namedtuple or attrs leaf
      (only nests of `Struct` can be packed).
  """
  def _pack(s, position):
    if not isinstance(s, Struct):
      if isinstance(s, (list, dict)) or _is_namedtuple(s) or _is_attrs(s):
        raise TypeError(
            f"Cannot pack sequence into type {type(s)!s}, only structures of "
            f"`Struct` are supported, found a structure with types {s!s}).")
      return flat_sequence[position], position + 1
    elements = []
    for k, v in iter_elements(s):
      packed, position = _pack(v, position)
      elements.append((k, packed))
    return Struct(elements), position
  return _pack(structure, 0)[0]


def _same_tree(a, b) -> bool:
  ta = jax.tree_util.tree_structure(a, is_leaf=lambda v: v is None)
  tb = jax.tree_util.tree_structure(b, is_leaf=lambda v: v is None)
  return ta == tb


def is_same_structure(a: Struct, b: Struct) -> bool:
  """True if `a` and `b` nest the same way with the same names.

  Example:
    >>> is_same_structure(Struct([('a', 1)]), Struct([('a', 2)]))
    True
    >>> is_same_structure(Struct([('a', 1)]), Struct([('b', 1)]))
    False
  """
  ea, eb = to_elements(a), to_elements(b)
  if len(ea) != len(eb):
    return False
  for (na, va), (nb, vb) in zip(ea, eb):
    if na != nb:
      return False
    if isinstance(va, Struct) and isinstance(vb, Struct):
      if not is_same_structure(va, vb):
        return False
    elif isinstance(va, Struct) or isinstance(vb, Struct):
      return False
    elif type(va) is not type(vb) and (
        isinstance(va, (list, tuple, dict)) or isinstance(vb, (list, tuple, dict))):
      return False
    elif not _same_tree(va, vb):
      return False
  return True


_is_same_structure = is_same_structure  # TFF's private spelling.


def map_structure(fn: Callable[..., Any], *structures: Any) -> Any:
  """Applies `fn` leafwise to structures of the same shape.

  With `Struct`s, the result is a `Struct` shaped as the first; otherwise
  the arguments are mapped as JAX pytrees.

  Example:
    >>> map_structure(lambda x, y: x + y, Struct([('a', 1)]), Struct([('a', 2)]))
    Struct([('a', 3)])

  Raises:
    ValueError: no structure given.
    TypeError: the structures do not have the same shape.
  """
  if not structures:
    raise ValueError("Must provide at least one structure")
  if not all(isinstance(s, Struct) for s in structures):
    return jax.tree_util.tree_map(fn, *structures, is_leaf=lambda v: v is None)
  for i, other in enumerate(structures[1:]):
    if not is_same_structure(structures[0], other):
      raise TypeError(f"Structure at position {i} is not the same structure")
  flat = [flatten(s) for s in structures]
  return pack_sequence_as(structures[0], [fn(*x) for x in zip(*flat)])


def from_container(value: object, recursive: bool = False) -> Struct:
  """A `Struct` from a dict, namedtuple, list, tuple, attrs or dataclass value.

  Only the top level converts unless `recursive` is true.

  Example:
    >>> from_container({'a': 1, 'b': [2, 3]})
    Struct([('a', 1), ('b', [2, 3])])
    >>> from_container({'a': 1, 'b': [2, 3]}, recursive=True)
    Struct([('a', 1), ('b', Struct([(None, 2), (None, 3)]))])

  Raises:
    TypeError: `value` is not one of these containers.
  """
  def _convert(v, must_be_container=False):
    if isinstance(v, Struct):
      return Struct((k, _convert(e)) for k, e in iter_elements(v)) if recursive else v
    if _is_attrs(v) or _is_dataclass(v):
      return _convert(_record_dict(v), must_be_container)
    if _is_namedtuple(v):
      return _convert(v._asdict(), must_be_container)
    if isinstance(v, Mapping):
      items = list(v.items())
      return Struct((k, _convert(e)) for k, e in items) if recursive else Struct(items)
    if isinstance(v, (tuple, list)):
      return Struct((None, _convert(e) if recursive else e) for e in v)
    if must_be_container:
      raise TypeError(f"Unable to convert a Python object of type {type(v)} into an "
                      f"`Struct`. Object: {v}. Expected a dict, list, tuple, "
                      f"namedtuple, dataclass or attrs instance.")
    return v
  return _convert(value, must_be_container=True)


def has_field(structure: Struct, field: str) -> bool:
  """True if `structure` has a field named `field`.

  Example:
    >>> has_field(Struct([('a', 1)]), 'a')
    True
  """
  return field in structure._name_array


def update_struct(structure, **kwargs):
  """A copy of `structure` with the named top-level fields replaced.

  Works for `Struct`, dicts, namedtuples, dataclasses and attrs classes; the
  result has the type of `structure`.

  Example:
    >>> update_struct(Struct([('a', 1), ('b', 2)]), b=5)
    Struct([('a', 1), ('b', 5)])
    >>> update_struct({'a': 1, 'b': 2}, a=3)
    {'a': 3, 'b': 2}

  Raises:
    KeyError: `kwargs` names a field that `structure` lacks.
    TypeError: `structure` has no named fields.
  """
  if not (isinstance(structure, (Struct, Mapping)) or _is_namedtuple(structure)
          or _is_attrs(structure) or _is_dataclass(structure)):
    raise TypeError(
        f"`structure` must be a structure with named fields (e.g. dict, attrs class, "
        f"dataclass, collections.namedtuple, fedjit.structure.Struct), but found "
        f"{type(structure)}")
  if isinstance(structure, Struct):
    elements = [(k, v) if k not in kwargs else (k, kwargs.pop(k))
                for k, v in iter_elements(structure)]
    if kwargs:
      raise KeyError(f"`structure` does not contain fields named {kwargs}")
    return Struct(elements)
  if _is_namedtuple(structure):
    dictionary = dict(structure._asdict())
  elif _is_attrs(structure) or _is_dataclass(structure):
    dictionary = _record_dict(structure)
  else:
    for key in kwargs:
      if key not in structure:
        raise KeyError(f"structure does not contain a field named \"{key!s}\"")
    dictionary = type(structure)(**structure)
  for key in kwargs:
    if key not in dictionary:
      raise KeyError(f"structure does not contain a field named \"{key!s}\"")
  dictionary.update(kwargs)
  if isinstance(structure, Mapping):
    return dictionary
  return type(structure)(**dictionary)
