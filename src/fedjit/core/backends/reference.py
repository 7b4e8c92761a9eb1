"""The reference backend: runs a computation client by client in plain Python, without jit.

Slow and obvious: the oracle the tests compare against, and the debugging
path (an error inside a client's computation names the computation and the
client). A `{T}@CLIENTS` value is a list with one member per client.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._computations import (FederatedComputation, JaxComputation, argument_what,
                                       executing, param_types)
from fedjit.core._context import Backend, register_backend
from fedjit.core._errors import ClientComputationError
from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._sequence import ListSequence
from fedjit.core._types import (FederatedType, SequenceType, StructType, Type, build_container,
                                has_client_values, has_federated, struct_fields,
                                tensor_types)
from fedjit.core._values import normalize, placed_members, to_numpy
from fedjit.core.backends.common import (bound_message, constant_value, first_group,
                                         need_clients, num_clients_of,
                                         range_message, rebuild, select_key_message,
                                         tensor_leaves_of)
from fedjit.core.backends.interpreter import Ops, evaluate, select_field

__all__ = ["ReferenceBackend", "from_reference", "to_reference"]


class ReferenceOps(Ops):
  """Client-by-client Python implementation of every intrinsic.

  A `{T}@CLIENTS` value is a list with one member per client. Without any
  `{T}@CLIENTS` argument the number of clients is unknown (`n` is None):
  CLIENTS values, all equal then, are one-member lists standing for every
  client, and intrinsics that need the number of clients raise, as on the
  vectorized backend.
  """

  def __init__(self, num_clients: int | None):
    self.n = num_clients

  def constant(self, node):
    return constant_value(node)

  def call(self, node, arg):
    return node.attrs["fn"].invoke(arg)

  def select(self, node, source_type, value):
    index = node.attrs["index"]
    if isinstance(source_type, FederatedType):
      st = source_type.member
      if source_type.placement == CLIENTS:
        return [select_field(st, m, index) for m in value]
      return select_field(st, value, index)
    return select_field(source_type, value, index)

  def _everywhere(self, v) -> list:
    """An all-equal CLIENTS value: one member per client (one for all if the
    number of clients is unknown)."""
    return [v] * (self.n if self.n is not None else 1)

  def federated_value(self, node, v):
    if node.type.placement == SERVER:
      return v
    return self._everywhere(v)

  def federated_broadcast(self, node, v):
    return self._everywhere(v)

  def federated_zip(self, node, v):
    st = node.type.member
    fields = struct_fields(st, v)
    if node.type.placement == SERVER:
      return v
    return [build_container(st, list(ms)) for ms in zip(*fields)]

  def federated_map(self, node, v):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return _run_python(fn, v, None)
    return [_run_python(fn, m, i) for i, m in enumerate(v)]

  def federated_mean(self, node, v, w=None):
    # Plain sequential arithmetic in the values' own dtype: sum(w_i v_i) / sum(w_i).
    # (Unweighted, the mean of an all-equal value is that value, so an unknown
    # number of clients does not matter.)
    if w is not None:
      need_clients(self.n, "federated_mean with weights")
    def mean(*xs):
      dtype = np.asarray(xs[0]).dtype
      if w is None:
        total = functools.reduce(np.add, [np.asarray(x) for x in xs])
        return jnp.asarray(total / dtype.type(len(xs)), dtype)
      ws = [np.asarray(wi, dtype) for wi in w]
      total = functools.reduce(np.add, [wi * np.asarray(x) for wi, x in zip(ws, xs)])
      return jnp.asarray(total / functools.reduce(np.add, ws), dtype)
    return jax.tree_util.tree_map(mean, *v)

  def federated_sum(self, node, v):
    need_clients(self.n, "federated_sum")
    return jax.tree_util.tree_map(
        lambda *xs: jnp.asarray(functools.reduce(np.add, [np.asarray(x) for x in xs])), *v)

  def federated_min(self, node, v):
    return jax.tree_util.tree_map(
        lambda *xs: jnp.asarray(functools.reduce(np.minimum, [np.asarray(x) for x in xs])), *v)

  def federated_collect(self, node, v):
    need_clients(self.n, "federated_collect")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *v)

  def federated_max(self, node, v):
    return jax.tree_util.tree_map(
        lambda *xs: jnp.asarray(functools.reduce(np.maximum, [np.asarray(x) for x in xs])), *v)

  def federated_eval(self, node):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return _run_python(fn, None, None)
    if self.n is None:  # all clients alike, their number unknown
      return [_run_python(fn, None, None)]
    return [_run_python(fn, None, i) for i in range(self.n)]

  def federated_select(self, node, keys, max_key, server):
    fn = node.attrs["fn"]
    top = int(np.asarray(max_key))
    out = []
    for i, k in enumerate(keys):
      k = np.asarray(k)
      bad = np.flatnonzero((k < 0) | (k > top))
      if bad.size:
        raise ValueError(select_key_message(i, int(k[bad[0]]), top))
      out.append(ListSequence([_run_python(fn, (server, jnp.asarray(key)), i) for key in k],
                              node.type.member.element))
    return out

  def _secure(self, node, v, bound):
    name = node.attrs["name"]
    need_clients(self.n, name)
    member = node.type.member
    bounds = list(bound)  # one scalar per tensor of the value
    columns = [tensor_leaves_of(member, m) for m in v]  # [client][leaf]
    out = []
    for j, (b, leaf_type) in enumerate(zip(bounds, tensor_types(member))):
      b = int(np.asarray(b).reshape(()))
      xs = [np.asarray(c[j]) for c in columns]
      dtype = leaf_type.dtype
      if name == "federated_secure_modular_sum":
        if b < 1:
          raise ValueError(bound_message(name, "modulus", b))
        total = 0
        for x in xs:
          total = (total + np.mod(x.astype(np.int64), b)) % b
        out.append(jnp.asarray(np.asarray(total).astype(dtype)))
        continue
      if name == "federated_secure_sum_bitwidth":
        if not 0 <= b <= 62:
          raise ValueError(bound_message(name, "bitwidth", b))
        limit, what = 2 ** b - 1, f"2**bitwidth - 1 = {2 ** b - 1} (bitwidth {b})"
      else:
        limit, what = b, f"max_input {b}"
      for i, x in enumerate(xs):
        bad = (x.astype(np.int64) < 0) | (x.astype(np.int64) > limit)
        if bad.any():
          raise ValueError(range_message(name, i, int(x.reshape(-1)[np.argmax(bad.reshape(-1))]),
                                          what))
      out.append(jnp.asarray(functools.reduce(np.add, xs).astype(dtype)))
    return rebuild(member, out)

  federated_secure_sum = _secure
  federated_secure_sum_bitwidth = _secure
  federated_secure_modular_sum = _secure

  def federated_aggregate(self, node, v, zero):
    # As in TFF: groups of clients are accumulated separately, each from
    # `zero`, and the partial accumulators merged. Two groups, the first
    # ceil(n/2) clients and the rest, as on the vectorized backend.
    need_clients(self.n, "federated_aggregate")
    accumulate = node.attrs["accumulate"]

    def fold(first: int, members: list):
      acc = zero
      for i, m in enumerate(members, first):
        acc = _run_python(accumulate, (acc, m), i)
      return acc
    half = first_group(len(v))
    acc = fold(0, v[:half])
    if half < len(v):
      acc = _run_python(node.attrs["merge"], (acc, fold(half, v[half:])), None)
    return _run_python(node.attrs["report"], acc, None)


def _run_python(fn: JaxComputation, arg, client: int | None):
  try:
    return fn.invoke(arg)
  except ClientComputationError:
    raise
  except Exception as e:
    where = f" on client {client}" if client is not None else ""
    raise ClientComputationError(
        f"jax_computation '{fn.name}' failed{where}: {type(e).__name__}: {e}",
        fn.name, client if client is not None else -1) from e


class ReferenceBackend(Backend):
  """Runs client by client in plain Python, without jit (the test oracle).

  Example:
    >>> with fedjit.backend("reference"):
    ...   get_average_temperature([68.5, 70.3, 69.8])
  """

  name = "reference"

  def __repr__(self):
    return "ReferenceBackend()"

  def run(self, comp, args):
    types = param_types(comp)
    reps = [to_reference(t, a, argument_what(comp, i))
            for i, (t, a) in enumerate(zip(types, args))]
    with executing():
      if isinstance(comp, FederatedComputation):
        n = num_clients_of(types, reps, len)
        reps = [_replicate(t, r, n) for t, r in zip(types, reps)]
        result = comp.type_signature.result
        if n is None and has_client_values(result):
          need_clients(n, f"returning a value of type {result}")
        out = evaluate(comp.graph, reps, ReferenceOps(n))
      else:
        out = comp.fn(*reps)
    return from_reference(comp.type_signature.result, out)


def _replicate(t: Type, rep, n: int | None):
  """An all-equal `T@CLIENTS` argument (given once) as the reference
  backend's list with one member per client."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS and t.all_equal:
      return [rep] * (n if n is not None else 1)
    return rep
  if isinstance(t, StructType) and has_federated(t):
    return build_container(t, [_replicate(ft, r, n)
                               for ft, r in zip(t.types(), struct_fields(t, rep))])
  return rep


def _create(**options) -> ReferenceBackend:
  if options:
    raise TypeError(f"The reference backend takes no options, got {sorted(options)}.")
  return ReferenceBackend()


register_backend("reference", _create)


def _ref_member(t: Type, normalized: Any) -> Any:
  if isinstance(t, SequenceType):
    return ListSequence([_ref_member(t.element, e) for e in normalized], t.element)
  return jax.tree_util.tree_map(jnp.asarray, normalized)


def to_reference(t: Type, value: Any, what: str = "") -> Any:
  """Python value -> reference representation (CLIENTS values are lists).

  Public as `fedjit.core.to_reference`: checks `value` against `t` (errors name
  `what` and the bad client) and returns jax arrays in Python containers, a
  `{T}@CLIENTS` value as a list with one member per client (an all-equal one
  as it was given), a sequence as a `fedjit.Sequence`. A backend that holds
  client values as Python lists can use it at its edge.

  Example:
    >>> t = fedjit.FederatedType(np.float32, fedjit.CLIENTS)
    >>> [float(m) for m in fedjit.core.to_reference(t, np.array([1.0, 2.0], np.float32))]
    [1.0, 2.0]
  """
  if isinstance(t, FederatedType):
    if hasattr(value, "client_datasets"):  # prepared for the vectorized backend (a Population's)
      value = value.client_datasets(t, what)
    members, is_list = placed_members(t, value, np, what)
    if is_list:
      return [_ref_member(t.member, m) for m in members]
    return _ref_member(t.member, members)
  if isinstance(t, StructType) and has_federated(t):
    fields = struct_fields(t, value)
    return build_container(t, [to_reference(ft, v, what) for ft, v in zip(t.types(), fields)])
  return _ref_member(t, normalize(t, value, np, what))


def from_reference(t: Type, rep: Any) -> Any:
  """Reference representation -> Python value (NumPy arrays, lists).

  Public as `fedjit.core.from_reference`: the inverse of `to_reference` for a
  result of type `t`; what `comp(...)` returns.

  Example:
    >>> t = fedjit.FederatedType(np.float32, fedjit.CLIENTS)
    >>> fedjit.core.from_reference(t, [np.float32(1.0), np.float32(2.0)])
    [np.float32(1.0), np.float32(2.0)]
  """
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      return [to_numpy(t.member, m) for m in rep] if not t.all_equal else to_numpy(
          t.member, rep[0])
    return to_numpy(t.member, rep)
  if isinstance(t, StructType) and has_federated(t):
    fields = struct_fields(t, rep)
    return build_container(t, [from_reference(ft, v) for ft, v in zip(t.types(), fields)])
  return to_numpy(t, rep)
