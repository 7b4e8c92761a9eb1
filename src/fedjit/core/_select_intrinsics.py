"""The keyed intrinsics: `federated_select` and `federated_secure_select`, which
send each client the values it selects by key from a server value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedjit.core import _ir
from fedjit.core._computations import FederatedComputation
from fedjit.core._errors import FederatedTypeError, PlacementError
from fedjit.core._intrinsic_checks import _as_computation, _placed
from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._tracing import builder_for as _builder, zip_federated
from fedjit.core._types import (FederatedType, SequenceType, StructType, TensorType,
                                check_no_placement_in)

__all__ = ["federated_select", "federated_secure_select"]


def federated_select(client_keys: Any, max_key: Any, server_val: Any,
                     select_fn: Any) -> _ir.FederatedValue:
  """Sends each client the values it selects by key from a server value.

  `({int32[N]}@CLIENTS, int32@SERVER, S@SERVER, (<S,int32> -> U)) -> {U*}@CLIENTS`:
  a client with keys `[k₁, …, k_N]` receives the sequence
  `[select_fn(server_val, k₁), …, select_fn(server_val, k_N)]`. Keys must lie
  in `[0, max_key]` (checked when the computation runs).

  Args:
    client_keys: `{int32[N]}@CLIENTS`, a fixed number of keys per client.
    max_key: `int32@SERVER`, the largest key any client may hold.
    server_val: `S@SERVER` (a structure of SERVER values is zipped).
    select_fn: a jax computation of `(S, int32)`, deterministic.

  Raises:
    PlacementError, FederatedTypeError: an argument of the wrong type (both
    TypeErrors).

  Example:
    >>> @fedjit.jax_computation(fedjit.TensorType(np.float32, [4]), np.int32)
    ... def row(table, key):
    ...   return table[key]
    >>> @fedjit.federated_computation(
    ...     fedjit.FederatedType(fedjit.TensorType(np.int32, [2]), fedjit.CLIENTS),
    ...     fedjit.FederatedType(fedjit.TensorType(np.float32, [4]), fedjit.SERVER))
    ... def pick(keys, table):
    ...   max_key = fedjit.federated_value(np.int32(3), fedjit.SERVER)
    ...   return fedjit.federated_select(keys, max_key, table, row)
    >>> pick([[0, 3]], np.array([10., 11., 12., 13.], np.float32))
    [[np.float32(10.0), np.float32(13.0)]]
  """
  name = "federated_select"
  b = _builder(name)
  k = b.value(client_keys, "client_keys")
  kt = _placed(k, name, CLIENTS, "client_keys")
  km = kt.member
  if not (isinstance(km, TensorType) and km.dtype == np.int32 and len(km.shape) == 1
          and km.shape[0] is not None):
    raise FederatedTypeError(
        f"fedjit.federated_select expects client_keys of type {{int32[N]}}@CLIENTS "
        f"(a fixed number N of int32 keys per client), but was given {kt}.")
  m = b.value(max_key, "max_key")
  expected_max = FederatedType(np.int32, SERVER)
  if not expected_max.is_assignable_from(m.type):
    error = PlacementError if not (isinstance(m.type, FederatedType)
                                   and m.type.placement == SERVER) else FederatedTypeError
    raise error(f"fedjit.federated_select expects max_key of type {expected_max}, but "
                f"was given {m.type}.")
  sv = b.value(server_val, "server_val")
  if isinstance(sv.type, StructType) and not check_no_placement_in(sv.type):
    sv = zip_federated(b, sv, name)
  st = _placed(sv, name, SERVER, "server_val")
  param = StructType([st.member, TensorType(np.int32)])
  comp = _as_computation(select_fn, name)
  if isinstance(comp, FederatedComputation):
    raise FederatedTypeError(f"fedjit.federated_select applies a jax_computation, but "
                             f"'{comp.name}' is a federated_computation.")
  comp = comp.concretize(param)
  p = comp.type_signature.parameter
  if p is None or not p.is_assignable_from(param):
    raise FederatedTypeError(
        f"fedjit.federated_select expects select_fn to take the server value and "
        f"a key, {param}, but '{comp.name}' has the type {comp.type_signature}.")
  result = comp.type_signature.result
  if not check_no_placement_in(result):
    raise FederatedTypeError(f"fedjit.federated_select's select_fn must return tensors, "
                             f"but '{comp.name}' returns {result}.")
  return b.add("intrinsic", [k.index, m.index, sv.index],
               FederatedType(SequenceType(result), CLIENTS), name=name, fn=comp)


def federated_secure_select(client_keys: Any, max_key: Any, server_val: Any,
                            select_fn: Any) -> _ir.FederatedValue:
  """`federated_select` where the server must not learn which keys a client
  selects (TFF's `federated_secure_select`; same types and results).

  Here the values are selected in the clear, as by `federated_select`; the
  private protocol comes with the deployment runtime.

  Example:
    >>> rows = fedjit.federated_secure_select(keys, max_key, table, row)
  """
  return federated_select(client_keys, max_key, server_val, select_fn)
