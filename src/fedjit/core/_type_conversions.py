"""Conversions between Python values and fedjit types (TFF's `type_conversions`).

`to_type` reads a type spec, `infer_type` the type of a value,
`build_container` / `struct_fields` build and split the Python value of a
struct type, and `type_to_py_container` / `to_structure_with_type` /
`structure_with_type` are TFF's helpers that give a value the Python
containers its type names:

  >>> import numpy as np, fedjit
  >>> from fedjit.core import _type_conversions as tc
  >>> tc.to_structure_with_type([1, 2], fedjit.to_type([('a', np.int32), ('b', np.int32)]))
  {'a': 1, 'b': 2}

A struct type without a Python container has `fedjit.structure.Struct`
values (as in TFF), named or not.
"""

from __future__ import annotations

import collections
import typing
from typing import Any, Callable, Sequence as PySequence

import jax
import numpy as np

from fedjit.core._structure import (Struct, iter_elements, name_list_with_nones,
                                    to_elements, to_odict_or_tuple)
from fedjit.core._types import (FederatedType, SequenceType, StructType, TensorType,
                                Type, _dtype, _is_attrs_class, _is_dataclass_class,
                                _is_dtype_like, _is_name_value_pair, _is_namedtuple,
                                _is_namedtuple_class, _is_tensor_spec, _record_fields)

__all__ = ["to_type", "infer_type", "build_container", "struct_fields",
           "type_to_py_container", "to_structure_with_type", "structure_with_type"]


_PY_SCALARS = {bool: np.bool_, int: np.int32, float: np.float32}


def _annotated_fields(cls: type) -> list[tuple[str, Any]]:
  """`(name, annotation)` for the fields of a NamedTuple, dataclass or attrs class."""
  try:
    hints = typing.get_type_hints(cls)
  except Exception:  # noqa: BLE001  (unresolvable string annotations)
    hints = dict(getattr(cls, "__annotations__", {}))
  names = list(cls._fields) if _is_namedtuple_class(cls) else _record_fields(cls)
  out = []
  for n in names:
    if n not in hints:
      raise TypeError(
          f"Cannot use the class {cls.__name__} as a type spec: its field {n!r} has no "
          f"type annotation. Annotate every field with a type spec (e.g. "
          f"{n}: np.float32), or pass an instance whose fields hold type specs.")
    a = hints[n]
    out.append((n, _PY_SCALARS.get(a, a)))
  return out


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


def infer_type(value: Any) -> Type:
  """The type of a concrete value (arrays, Python scalars, pytrees of them).

  Python floats are `float32` and ints `int32`, and 64-bit NumPy values are
  32-bit, as JAX computes them in its default mode (TFF: int64/float64 for
  NumPy's 64-bit values). Containers (list, tuple, dict, namedtuple,
  dataclass, attrs) become struct types that keep the container; a
  `fedjit.structure.Struct` gives a struct type without one; an object with
  a `type_signature` property (a computation, a federated value) gives that
  type (TFF's `TypedObject`).

  Example:
    >>> import numpy as np, fedjit
    >>> str(fedjit.infer_type({'w': np.zeros((2, 3), np.float32), 'n': 3}))
    '<w=float32[2,3],n=int32>'
    >>> str(fedjit.infer_type(fedjit.structure.Struct([('a', 1.0), (None, True)])))
    '<a=float32,bool>'

  Raises:
    TypeError: the value is a type, `None`, a string or another object
      that is none of these.
  """
  if isinstance(value, Type):
    raise TypeError(f"Expected a value, got the type {value}.")
  if isinstance(getattr(type(value), "type_signature", None), property) and \
      isinstance(getattr(value, "type_signature", None), Type):
    return value.type_signature  # a typed object (TFF's TypedObject)
  for py, dt in _PY_SCALARS.items():
    if type(value) is py:
      return TensorType(dt)
  if isinstance(value, Struct):
    return StructType([(n, infer_type(v)) for n, v in to_elements(value)])
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
  if _is_attrs_class(type(value)) or _is_dataclass_class(type(value)):
    return StructType([(n, infer_type(getattr(value, n)))
                       for n in _record_fields(type(value))], container=type(value))
  raise TypeError(
      f"Cannot infer a fedjit type for {value!r} of Python type "
      f"{type(value).__name__}; expected arrays, Python numbers, or "
      f"tuples/lists/dicts/namedtuples/dataclasses/fedjit.structure.Struct of "
      f"them (fedjit has no string tensors and no type for None). Declare the "
      f"type instead, e.g. @fedjit.jax_computation(np.float32).")


def build_container(t: StructType, values: PySequence[Any]):
  """Builds the Python value of struct type `t` from its field values.

  The value has `t`'s Python container (tuple, list, dict, OrderedDict,
  namedtuple, dataclass or attrs class). Without one it is a
  `fedjit.structure.Struct`, named or not, as in TFF: fields read by name
  (`s.a`, `s['a']`) and position (`s[0]`), and it is a JAX pytree. (fedjit
  used to give a dict for named fields and a tuple for unnamed ones; a
  `Struct` iterates over its values like the tuple did, and Struct values
  are accepted wherever dicts or tuples with the same fields are.)

  Example:
    >>> import numpy as np, fedjit
    >>> build_container(fedjit.to_type([('a', np.int32), ('b', np.int32)]), [1, 2])
    Struct([('a', 1), ('b', 2)])
    >>> build_container(fedjit.to_type((np.int32, np.int32)), [1, 2])
    (1, 2)
  """
  names = t.names()
  c = t.container
  if c is not None and hasattr(c, "_fields"):
    return c(*values)
  if c is not None and issubclass(c, collections.abc.Mapping):
    return c(zip(names, values))
  if c in (list, tuple):
    return c(values)
  if c is not None and (_is_attrs_class(c) or _is_dataclass_class(c)):
    return c(**dict(zip(names, values)))
  # No Python container: a `fedjit.structure.Struct`, as in TFF (named or not).
  return Struct(list(zip(names, values)))


def struct_fields(t: StructType, value: Any) -> list[Any]:
  """Splits a Python value of struct type `t` into its field values.

  Raises a TypeError saying what was expected when the value does not fit.

  Example:
    >>> import numpy as np, fedjit
    >>> fedjit.core.struct_fields(fedjit.to_type([('a', np.int32), ('b', np.int32)]),
    ...                      {'a': 1, 'b': 2})
    [1, 2]
  """
  names = t.names()
  if isinstance(value, Struct):
    vnames = name_list_with_nones(value)
    if len(value) != len(t) or any(
        n is not None and v is not None and n != v for n, v in zip(names, vnames)):
      raise TypeError(f"Expected a structure {t} with fields {list(names)}, got a "
                      f"Struct with fields {vnames}.")
    return list(value)
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
  if _is_attrs_class(type(value)) or _is_dataclass_class(type(value)):
    fields = _record_fields(type(value))
    if len(fields) != len(t) or any(n is not None and n != f for n, f in zip(names, fields)):
      raise TypeError(f"Expected a structure {t} with fields {list(names)}, got a "
                      f"{type(value).__name__} with fields {fields}.")
    return [getattr(value, f) for f in fields]
  raise TypeError(f"Expected a structure {t} (a tuple, list or dict), got "
                  f"{type(value).__name__}.")


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
