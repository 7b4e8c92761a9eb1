"""TFF's `structure` module, public as `fedjit.structure`: the functions over
`Struct` values (`to_odict_or_tuple`, `from_container`, `map_structure`, ...).

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

The `Struct` class and its element accessors (`to_elements`, `to_odict`, ...)
are defined in `_struct` and importable from here; all follow TFF's semantics.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Union

import jax

from fedjit.core._struct import (_T, Struct, _to_container_recursive,  # re-exported
                                 iter_elements, name_list,
                                 name_list_with_nones, to_elements, to_odict)
# Names this module held before the split, kept importable.
from fedjit.core._struct import _check_struct, _is_name_value_pair  # noqa: F401

__all__ = [
    "Struct", "name_list", "name_list_with_nones", "to_elements", "iter_elements",
    "to_odict", "to_odict_or_tuple", "flatten", "pack_sequence_as",
    "is_same_structure", "map_structure", "from_container", "has_field",
    "update_struct",
]


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
