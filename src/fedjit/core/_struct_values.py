"""The Python values of fedjit types: `infer_type` reads a value's type, and
`build_container` / `struct_fields` build and split the value of a struct type.

A struct type without a Python container has `fedjit.structure.Struct`
values (as in TFF), named or not.
"""

from __future__ import annotations

import collections
from typing import Any, Sequence as PySequence

import jax
import numpy as np

from fedjit.core._structure import Struct, name_list_with_nones, to_elements
from fedjit.core._struct_types import StructType
from fedjit.core._type_base import TensorType, Type
from fedjit.core._type_specs import (_PY_SCALARS, _is_attrs_class, _is_dataclass_class,
                                     _is_namedtuple, _record_fields)

__all__ = ["infer_type", "build_container", "struct_fields"]


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
