"""Recognising Python type specs: dtype-likes, `(dtype, shape)` pairs, and the
record classes (namedtuples, dataclasses, attrs classes) whose fields are specs.

Nothing here builds a fedjit `Type`; `to_type` (in `_struct_types`) uses these
predicates to read a spec.
"""

from __future__ import annotations

import collections
import dataclasses
import typing
import warnings
from typing import Any

import numpy as np

def _dtype(spec) -> np.dtype:
  try:
    return np.dtype(spec)
  except TypeError as e:
    raise TypeError(
        f"Expected a dtype (such as np.float32, jnp.int32 or 'float32'), "
        f"got {spec!r}.") from e


def _is_name_value_pair(x, name_types=(str, type(None))) -> bool:
  """A `(name, value)` field: a 2-sequence whose first item is a name (TFF's rule).

  A dtype name such as 'float32' is a dtype here, not a field name (fedjit
  accepts dtype names where TFF does not), so `('float32', [2])` stays the
  tensor spec `float32[2]`.
  """
  return (isinstance(x, collections.abc.Sequence) and not isinstance(x, (str, bytes))
          and len(x) == 2 and isinstance(x[0], name_types)
          and not (isinstance(x[0], str) and _is_dtype_string(x[0])))


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
