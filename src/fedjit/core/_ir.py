"""Python values as values of the federated computation being traced
(`to_value`, `ensure_federated_value`); the import point of the typed IR.

The graph (`Node`, `Graph`, function references) lives in `_graph`, and the
builder and traced values (`Builder`, `FederatedValue`, ...) in `_tracing`;
all are importable from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedjit.core._errors import FederatedOperationError, TypeNotAssignableError
# The graph and the tracing machinery, re-exported: other modules import them from here.
from fedjit.core._graph import (DeferredComputation, FunctionRef, Graph,  # re-exported
                                Node, bind_functions)
from fedjit.core._structure import Struct
from fedjit.core._tracing import (Builder, FederatedValue, FieldNotFoundError,  # re-exported
                                  FunctionValue, _contains_value, _is_record, _misuse,
                                  _record_items, current_builder, federated_zip,
                                  find_value_in_traceback)
from fedjit.core._types import FederatedType, SequenceType, TensorType, to_type
# Names this module held before the split, kept importable.
from fedjit.core._errors import FederatedAttributeError, FederatedTypeError  # noqa: F401
from fedjit.core._structure import to_elements  # noqa: F401
from fedjit.core._tracing import _BUILDER, _add_operator, _const_leaves  # noqa: F401
from fedjit.core._types import FunctionType, StructType, Type, infer_type, tensor_types  # noqa: F401

__all__ = ["Node", "Graph", "FederatedValue", "FunctionValue", "FunctionRef",
           "DeferredComputation", "Builder", "current_builder", "to_value"]


def to_value(value: Any, type_spec: Any = None) -> FederatedValue:
  """A value of the federated computation being traced (TFF's `to_value`).

  Builds a value from a federated value, a Python container (list, tuple,
  dict, namedtuple, dataclass, attrs instance or `fedjit.structure.Struct`)
  of them, or a constant (a Python number, NumPy scalar or array). With
  `type_spec`, the constant takes that type (`to_value(1, np.float32)` is a
  float32 constant) and the value must be assignable to it.

  Only inside a `@fedjit.federated_computation` being traced: elsewhere
  values are plain Python/NumPy values and need no conversion.

  Example:
    >>> import numpy as np, fedjit
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.SERVER))
    ... def pair(x):
    ...   v = fedjit.to_value([x, x])
    ...   assert str(v.type_signature) == '<int32@SERVER,int32@SERVER>'
    ...   return v
    >>> str(pair.type_signature)
    '(int32@SERVER -> <int32@SERVER,int32@SERVER>)'

  Raises:
    TypeError: not inside a federated computation, `value` cannot become a
      federated value, or its type is not assignable to `type_spec`.
    ValueError: a constant cannot be represented in `type_spec`'s dtype
      (e.g. `10` as a bool).
  """
  b = current_builder()
  if b is None:
    raise FederatedOperationError(
        "fedjit.to_value builds values of a federated computation being traced; "
        "call it inside a @fedjit.federated_computation. Outside one, use the "
        "Python/NumPy value itself.")
  t = None if type_spec is None else to_type(type_spec)
  if isinstance(value, FederatedValue) or _contains_value(value):
    v = b.value(value, "value")
  else:
    if isinstance(t, TensorType):
      v = b.add("constant", [], t, value=[_cast_constant(value, t)])
    elif isinstance(t, SequenceType):
      raise FederatedOperationError(
          f"fedjit.to_value cannot build a sequence of type {t} from {value!r} inside "
          f"a federated computation; pass sequences as arguments of the computation.")
    else:
      if not _is_convertible(value):
        raise FederatedOperationError(
            f"Expected a Python types that is convertible to a `fedjit.FederatedValue` "
            f"(a federated value, a NumPy/Python number or array, or a list, tuple, "
            f"dict, namedtuple, dataclass or Struct of them), found {type(value)}.")
      v = b.value(value, "value")
  if t is not None and not t.is_assignable_from(v.type):
    raise TypeNotAssignableError(
        f"fedjit.to_value: the value of type {v.type} is not assignable to the "
        f"requested type {t}.")
  return v


def _is_convertible(x) -> bool:
  if isinstance(x, (bool, int, float, str, bytes, np.generic, np.ndarray)):
    return True
  if hasattr(x, "dtype") and hasattr(x, "shape"):
    return True
  if isinstance(x, (list, tuple, Struct)):
    return all(_is_convertible(e) for e in x)
  if isinstance(x, dict):
    return all(_is_convertible(e) for e in x.values())
  if _is_record(x):
    return all(_is_convertible(e) for _, e in _record_items(x))
  return False


def _cast_constant(value, t):
  """`value` as an array of tensor type `t`, or a ValueError if it does not fit."""
  if not _is_convertible(value) or isinstance(value, (list, tuple, dict)):
    raise FederatedOperationError(
        f"Expected a Python types that is convertible to a `fedjit.FederatedValue` of "
        f"type {t}, found {value!r} ({type(value).__name__}).")
  a = np.asarray(value)
  if a.dtype != t.dtype and not np.can_cast(np.min_scalar_type(a) if a.ndim == 0 else a.dtype,
                                             t.dtype, casting="same_kind"):
    raise ValueError(
        f"Cannot represent the value {value!r} ({a.dtype}) as the type {t}; give a "
        f"value of a compatible dtype, or a matching type_spec.")
  out = a.astype(t.dtype)
  if a.dtype != t.dtype and not np.array_equal(out, a):
    raise ValueError(f"The value {value!r} changes when converted to {t} ({out!r}).")
  if t.shape is not None and any(
      d is not None and d != s for d, s in zip(t.shape, out.shape)) or (
      t.shape is not None and len(t.shape) != out.ndim):
    raise ValueError(f"The value of shape {out.shape} does not fit the type {t}.")
  return out


def ensure_federated_value(value: FederatedValue, placement=None,
                           label: str | None = None) -> FederatedValue:
  """`value` as one federated value, placed at `placement` if given (TFF's
  `value_utils.ensure_federated_value`).

  A structure of federated values at one placement is zipped
  (`fedjit.federated_zip`) into a federated structure.

  Example:
    >>> import numpy as np, fedjit
    >>> from fedjit.core._ir import ensure_federated_value
    >>> @fedjit.federated_computation([fedjit.FederatedType(np.int32, fedjit.CLIENTS)] * 2)
    ... def zipped(x):
    ...   return ensure_federated_value(x, fedjit.CLIENTS)
    >>> str(zipped.type_signature.result)
    '{<int32,int32>}@CLIENTS'

  Raises:
    TypeError: `value` is not federated and cannot be zipped into one
      federated value, or it is placed elsewhere than `placement`.
  """
  what = label or "value"
  if not isinstance(value.type, FederatedType):
    try:
      value = federated_zip(value)
    except (TypeError, ValueError) as e:
      raise FederatedOperationError(
          f"The {what} must be a federated value or implicitly convertible to a "
          f"federated value (a structure of federated values at one placement), got "
          f"a {value.type}: {e}") from None
  if placement is not None and value.type.placement != placement:
    raise FederatedOperationError(
        f"The {what} should be placed at {placement}, but it is placed at "
        f"{value.type.placement} (type {value.type}). Move it with "
        f"fedjit.federated_broadcast (SERVER to CLIENTS) or an aggregation such as "
        f"fedjit.federated_sum (CLIENTS to SERVER).")
  return value
