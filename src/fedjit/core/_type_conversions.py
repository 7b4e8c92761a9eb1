"""TFF's `type_conversions` helpers that give a value the Python containers its
type names: `type_to_py_container`, `to_structure_with_type`, `structure_with_type`.

  >>> import numpy as np, fedjit
  >>> from fedjit.core import _type_conversions as tc
  >>> tc.to_structure_with_type([1, 2], fedjit.to_type([('a', np.int32), ('b', np.int32)]))
  {'a': 1, 'b': 2}

`to_type`, `infer_type`, `build_container` and `struct_fields`, TFF's module's
other functions, are defined with the types they read and build
(`_struct_types`, `_struct_values`) and importable from here too.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from fedjit.core._structure import Struct, name_list_with_nones, to_odict_or_tuple
from fedjit.core._struct_types import to_type  # re-exported
from fedjit.core._struct_values import build_container, infer_type, struct_fields  # re-exported
from fedjit.core._type_specs import (_PY_SCALARS, _annotated_fields,  # re-exported
                                     _is_attrs_class, _is_dataclass_class, _record_fields)
from fedjit.core._types import FederatedType, SequenceType, StructType, Type
# Names this module held before the split, kept importable.
from fedjit.core._structure import iter_elements, to_elements  # noqa: F401
from fedjit.core._type_specs import (_dtype, _is_dtype_like, _is_name_value_pair,  # noqa: F401
                                     _is_namedtuple, _is_namedtuple_class, _is_tensor_spec)
from fedjit.core._types import TensorType  # noqa: F401

__all__ = ["to_type", "infer_type", "build_container", "struct_fields",
           "type_to_py_container", "to_structure_with_type", "structure_with_type"]


def _check_fits(ok: bool, value, type_spec) -> None:
  if not ok:
    raise ValueError(f"Cannot give the value {value!r} the type {type_spec}: they do "
                     f"not have the same structure. Give a value with "
                     f"{len(type_spec) if isinstance(type_spec, StructType) else 'no'} "
                     f"fields per structure, as the type says.")


def to_structure_with_type(obj: Any, type_spec: Any) -> Any:
  """`obj` rebuilt with the Python containers that `type_spec` names.

  Fields match by position (dict values in insertion order); a struct type
  without a container whose fields are all named gives a `dict`, one with no
  names a `list` (TFF's rule). Federated and sequence types pass through to
  their members (a CLIENTS-placed, not all-equal value is taken as is).

  Example:
    >>> import collections, numpy as np, fedjit
    >>> to_structure_with_type({'a': 1, 'b': 2}, fedjit.StructType([np.int32, np.int32]))
    [1, 2]

  Raises:
    ValueError: `obj` does not have the structure of `type_spec`, or the type
      mixes named and unnamed fields.
  """
  type_spec = to_type(type_spec)

  def convert(o, t):
    if isinstance(t, FederatedType):
      if t.placement.uri == "clients" and not t.all_equal:
        return o
      return convert(o, t.member)
    if isinstance(t, SequenceType):
      return o
    if isinstance(t, StructType):
      if isinstance(o, Struct):
        elements = list(iter(o))
      elif isinstance(o, collections.abc.Mapping):
        elements = list(o.values())
      elif _is_attrs_class(type(o)) or _is_dataclass_class(type(o)):
        elements = [getattr(o, f) for f in _record_fields(type(o))]
      elif isinstance(o, (list, tuple)):
        elements = list(o)
      else:
        elements = None
      _check_fits(elements is not None and len(elements) == len(t), o, t)
      values = [convert(e, et) for e, et in zip(elements, t.types())]
      names = t.names()
      if t.container is not None:
        return build_container(t, values)
      if all(n is not None for n in names) and names:
        return dict(zip(names, values))
      if any(n is not None for n in names):
        raise ValueError(f"Cannot give {o!r} the type {t}: it mixes named and "
                         f"unnamed fields, which no Python container holds.")
      return values
    _check_fits(not isinstance(o, (list, tuple, dict, Struct)), o, t)
    return o

  return convert(obj, type_spec)


def structure_with_type(factory: Callable[[Type], Any], type_spec: Any) -> Any:
  """A value of `type_spec`'s structure with `factory(tensor_type)` leaves.

  Containers as in `to_structure_with_type` (named -> dict, unnamed -> list).

  Example:
    >>> import numpy as np, fedjit
    >>> structure_with_type(lambda t: 0, fedjit.to_type([('a', np.int32), ('b', np.int32)]))
    {'a': 0, 'b': 0}
  """
  type_spec = to_type(type_spec)

  def build(t):
    if isinstance(t, FederatedType):
      return build(t.member)
    if isinstance(t, StructType):
      return _from_fields(t, [build(e) for e in t.types()])
    return factory(t)

  def _from_fields(t, values):
    names = t.names()
    if t.container is not None:
      return build_container(t, values)
    if names and all(n is not None for n in names):
      return dict(zip(names, values))
    return values

  return build(type_spec)


def type_to_py_container(value: Any, type_spec: Any) -> Any:
  """`value` (usually `Struct`s) with the Python containers of `type_spec`.

  A struct type with a container gives that container (tuple, list, dict,
  OrderedDict, namedtuple, dataclass or attrs class); one without gives an
  `OrderedDict` (all fields named) or a `tuple` (none named), as
  `fedjit.structure.to_odict_or_tuple`. A `{T}@CLIENTS` value is a list of
  member values, each converted.

  Example:
    >>> import numpy as np, fedjit
    >>> Struct = fedjit.structure.Struct
    >>> type_to_py_container(Struct([(None, 1), (None, 2.0)]),
    ...                      fedjit.StructType([np.int32, np.float32]))
    (1, 2.0)

  Raises:
    ValueError: a value's field names do not fit a container without names
      (`Cannot convert value with field name ...`), or a container-less
      type mixes named and unnamed fields.
  """
  type_spec = to_type(type_spec)
  if isinstance(type_spec, FederatedType):
    if type_spec.placement.uri == "clients" and not type_spec.all_equal:
      return [type_to_py_container(v, type_spec.member) for v in value]
    return type_to_py_container(value, type_spec.member)
  if isinstance(type_spec, SequenceType):
    return value
  if not isinstance(type_spec, StructType):
    return value
  if not isinstance(value, Struct):
    return value  # already a Python container (TFF passes these through)
  values = [type_to_py_container(v, t) for v, t in zip(value, type_spec.types())]
  c = type_spec.container
  vnames = name_list_with_nones(value)
  if c is None:
    return to_odict_or_tuple(Struct(list(zip(vnames, values))), recursive=False)
  names_needed = not (c in (list, tuple) or (issubclass(c, tuple) and
                                              not hasattr(c, "_fields")))
  if not names_needed:
    for n in vnames:
      if n is not None:
        raise ValueError(f"Cannot convert value with field name `{n}` into a type "
                         f"with no field names ({c.__name__}): {value!r}.")
    return c(values)
  names = [tn if tn is not None else vn
           for tn, vn in zip(type_spec.names(), vnames)]
  if issubclass(c, collections.abc.Mapping):
    return c(zip(names, values))
  if hasattr(c, "_fields"):
    return c(*values)
  return c(**dict(zip(names, values)))
