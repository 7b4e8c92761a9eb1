"""The `Struct` class (TFF's `structure.Struct`), a JAX pytree, with the accessors
its own methods use (`to_elements`, `iter_elements`, `name_list`, `to_odict`).

The rest of TFF's `structure` module is in `_structure` (public as
`fedjit.structure`), which re-exports all of this.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Optional, TypeVar, Union

import jax

_T = TypeVar("_T")


def _is_name_value_pair(e) -> bool:
  return (isinstance(e, (tuple, list)) and len(e) == 2 and
          (e[0] is None or isinstance(e[0], str)))


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


# Its public home is `fedjit.structure` (= `_structure`, which re-exports it):
# pickles name it there, as before the class moved here.
Struct.__module__ = "fedjit.core._structure"

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
