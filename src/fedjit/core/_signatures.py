"""Declaring a computation's types: reading the decorators' arguments, checking
declared types (concrete, 32-bit unless JAX's 64-bit mode is on), and the
symbolic arguments and result types that `jax.eval_shape` gives.
"""

from __future__ import annotations

from typing import Any

import jax
from jax import export as jax_export
import numpy as np

from fedjit.core._errors import FederatedTypeError
from fedjit.core._function_utils import declared_parameter_types, fn_name
from fedjit.core._sequence import PaddedSequence, Sequence, abstract_value
from fedjit.core._types import (FederatedType, FunctionType, SequenceType, StructType,
                                TensorType, Type, check_concrete, to_type)

__all__ = ["check_64_bit", "result_type_of"]


_WIDE_DTYPES = (np.dtype(np.int64), np.dtype(np.uint64), np.dtype(np.float64),
                np.dtype(np.complex128))


def _tensor_types(t: Type | None) -> list[TensorType]:
  """Every tensor type inside `t` (through placements, structures, sequences)."""
  if t is None:
    return []
  if isinstance(t, TensorType):
    return [t]
  if isinstance(t, FederatedType):
    return _tensor_types(t.member)
  if isinstance(t, SequenceType):
    return _tensor_types(t.element)
  if isinstance(t, FunctionType):
    return _tensor_types(t.parameter) + _tensor_types(t.result)
  return [leaf for e in t.types() for leaf in _tensor_types(e)]


def check_64_bit(fn_name: str, types: list[Type]) -> None:
  """Raises if a declared type is 64-bit while JAX's 64-bit mode is off.

  JAX would otherwise compute in 32 bits without a word (an int64 sum of
  2**40 and 1 would give 1).
  """
  if jax.config.jax_enable_x64:
    return
  for t in types:
    wide = sorted({l.dtype.name for l in _tensor_types(t) if l.dtype in _WIDE_DTYPES})
    if wide:
      raise FederatedTypeError(
          f"'{fn_name}' declares the type {t}, which holds 64-bit values "
          f"({', '.join(wide)}), but JAX's 64-bit mode is off, so JAX would "
          f"silently compute in 32 bits (an int64 sum of 2**40 and 1 would give 1). "
          f"Enable 64-bit mode before declaring the computation, with "
          f"jax.config.update('jax_enable_x64', True) at the start of the program "
          f"(or the environment variable JAX_ENABLE_X64=1), or declare 32-bit "
          f"types (np.float32, np.int32).")


def _param_types(name: str, names: list[str], types: tuple) -> list[Type]:
  """One type per Python parameter, from the decorator's arguments."""
  types = [to_type(t) for t in types]
  for t in types:
    check_concrete(t, name)
  check_64_bit(name, types)
  return declared_parameter_types(name, names, types)


def _parameter_type(names: list[str], types: list[Type]) -> Type | None:
  if not types:
    return None
  if len(types) == 1:
    return types[0]
  return StructType(list(zip(names, types)))


def _symbolic_abstract(types: list[Type]) -> list[Any]:
  """Abstract arguments with symbolic sizes for every `?` dimension."""
  names: list[str] = []

  def collector(i):
    counter = [0]

    def dims(key):
      if key in ("n", "b", "lead"):
        name = f"{key}{i}"
      else:
        counter[0] += 1
        name = f"d{i}_{counter[0]}"
      if name not in names:
        names.append(name)
      return name
    return dims

  for i, t in enumerate(types):
    abstract_value(t, collector(i))
  if not names:
    return [abstract_value(t, lambda k: 1) for t in types]
  sym = dict(zip(names, jax_export.symbolic_shape(", ".join(names))))
  out = []
  for i, t in enumerate(types):
    c = collector(i)
    out.append(abstract_value(t, lambda key, c=c: sym[c(key)]))
  return out


def result_type_of(out: Any) -> Type:
  """The fedjit type of an eval_shape result (may contain sequences)."""
  if isinstance(out, PaddedSequence):
    return SequenceType(out.element_type)
  if isinstance(out, Sequence):
    return SequenceType(out.element_type)
  if isinstance(out, (list, tuple, dict)) and not hasattr(out, "shape"):
    if hasattr(out, "_fields"):
      return StructType([(n, result_type_of(v)) for n, v in zip(out._fields, out)],
                        container=type(out))
    if isinstance(out, dict):
      return StructType([(str(k), result_type_of(v)) for k, v in out.items()],
                        container=type(out))
    return StructType([result_type_of(v) for v in out], container=type(out))
  return to_type(out)


def _is_function(x) -> bool:
  """True for a Python function to decorate (not a type spec such as np.int32
  or a namedtuple class, which are callable too)."""
  return callable(x) and not isinstance(x, (Type, type)) and not hasattr(x, "dtype") \
      and not _dtype_like(x)


def _split_decorator_args(args: tuple, decorator: str) -> tuple:
  """(function or None, types) from the decorator's arguments, which are
  either types (`@decorator(np.int32)`), a function (bare `@decorator`), or
  a function then types (`decorator(lambda x: x, np.int32)`), as in TFF.

  The types are checked here, so that `decorator(10)` fails at once.
  """
  fn = None
  if args and _is_function(args[0]):
    fn, args = args[0], args[1:]
  for t in args:
    if _is_function(t):
      raise TypeError(
          f"fedjit.{decorator} takes types, or a function followed by types, but "
          f"was given the function {fn_name(t)!r} after "
          f"{'a function' if fn is not None else 'types'}. Decorate one function: "
          f"@fedjit.{decorator}(np.int32) above def f(x).")
    to_type(t)  # Raises a TypeError saying what a type may be.
  return fn, args


def _check_callable(fn, decorator: str) -> None:
  if not callable(fn):
    raise TypeError(
        f"fedjit.{decorator} decorates a Python function, but was given "
        f"{fn!r} of type {type(fn).__name__}. (Decorating a property's value, "
        f"e.g. obj.prop, passes its value; pass a function or method instead.)")


def _dtype_like(x) -> bool:
  try:
    np.dtype(x)
    return True
  except TypeError:
    return False
