"""`federated_collect`: the one intrinsic that shows the server every client's
value (robust aggregators need them all at once), with a type that says so.

TFF's intrinsics reveal client values to the server only as aggregates
(sums, means, secure sums); `federated_collect` is fedjit's explicit
exception, so that an analysis of the graph can tell which flows reveal
individual values.
"""

from __future__ import annotations

from typing import Any

from fedjit.core import _ir
from fedjit.core._intrinsic_checks import _client_value
from fedjit.core._placements import SERVER
from fedjit.core._tracing import builder_for as _builder
from fedjit.core._types import FederatedType, StructType, TensorType, Type

__all__ = ["collected_type", "federated_collect"]


def collected_type(member: Type) -> Type:
  """The server's type of collected `member` values: every tensor gains a
  leading `?` axis of clients (`float32[3]` -> `float32[?,3]`).

  Example:
    >>> str(fedjit.core.collected_type(fedjit.TensorType(np.float32, [3])))
    'float32[?,3]'
  """
  if isinstance(member, TensorType):
    return TensorType(member.dtype, (None,) + tuple(member.shape))
  if isinstance(member, StructType):
    return StructType([(n, collected_type(e)) for n, e in member.items()],
                      container=member.container)
  raise TypeError(f"fedjit.federated_collect collects tensors or structures of them, got "
                  f"{member}.")


def federated_collect(value: Any) -> _ir.FederatedValue:
  """Every client's value, at the server: `{T}@CLIENTS -> T'@SERVER`, where
  each tensor of `T'` is the clients' tensors stacked along a new leading
  axis (`?`: the number of clients), in cohort order.

  This is the one intrinsic that reveals individual client values to the
  server (the others reveal only aggregates); robust aggregators
  (median, Krum, ...) are built on it. Memory: the server holds cohort ×
  value size.

  Raises:
    PlacementError: `value` is not placed at CLIENTS (a TypeError).
    TypeError: `T` holds sequences or functions (only tensors and
      structures of them can be stacked).

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
    ... def gather(xs):
    ...   return fedjit.federated_collect(xs)
    >>> gather([3.0, 1.0, 2.0])
    array([3., 1., 2.], dtype=float32)
  """
  b = _builder("federated_collect")
  v = _client_value(b, value, "federated_collect", "value")
  return b.add("intrinsic", [v.index], FederatedType(collected_type(v.type.member), SERVER, True),
               name="federated_collect")
