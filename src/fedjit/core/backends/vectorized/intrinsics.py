"""The intrinsics over cohorts (`VectorizedOps`, traced under jit), and the wrapping
of a program's arguments and results as the interpreter's CLIENTS values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._sequence import PaddedSequence, is_batched, like
from fedjit.core._types import (FederatedType, StructType, Type, build_container,
                                has_federated, struct_fields)
from fedjit.core.backends.common import (bound_check_message, constant_value, first_group,
                                         max_of_bitwidth, need_clients, range_message,
                                         rebuild, select_key_message, tensor_leaves_of)
from fedjit.core.backends.interpreter import Ops, select_field
from fedjit.core.backends.vectorized.cohorts import (BucketedClients, BucketedSequence, Clients,
                                                     GatheredSequence, LazyRows, flags_like,
                                                     resolve, scatter)
from fedjit.core.backends.vectorized.loops import ClientLoops

__all__ = ["VectorizedOps", "raise_failed_checks"]


class VectorizedOps(ClientLoops, Ops):
  """Implements intrinsics on arrays with a leading client axis (under jit)."""

  def __init__(self, num_clients: int | None, client_map: str, chunk_size: int | None,
               devices: list | None = None):
    self.n = num_clients
    self.client_map = client_map
    self.chunk_size = chunk_size
    self.devices = devices if devices and len(devices) > 1 else None
    # Conditions checked once the program has run (a secure sum's inputs in
    # range, say): (message(client, value, bound), (ok, client, value, bound)).
    self.checks: list = []

  def constant(self, node):
    return constant_value(node)

  def call(self, node, arg):
    return node.attrs["fn"].invoke(arg)

  def select(self, node, source_type, value):
    index = node.attrs["index"]
    if isinstance(source_type, FederatedType):
      st = source_type.member
      if source_type.placement == CLIENTS:
        if isinstance(value, BucketedClients):
          return BucketedClients([Clients(select_field(st, p.value, index),
                                          select_field(st, p.mapped, index))
                                  for p in value.parts], value.positions, value.valid, value.n)
        return Clients(select_field(st, value.value, index),
                       select_field(st, value.mapped, index))
      return select_field(st, value, index)
    return select_field(source_type, value, index)

  def federated_value(self, node, v):
    if node.type.placement == SERVER:
      return v
    return Clients(v, flags_like(v, False))

  def federated_broadcast(self, node, v):
    return Clients(v, flags_like(v, False))

  def federated_zip(self, node, v):
    st = node.type.member
    fields = struct_fields(st, v)
    if node.type.placement == SERVER:
      return v
    bucketed = [c for c in fields if isinstance(c, BucketedClients)]
    if bucketed:
      ref = bucketed[0]
      fields = [c if not isinstance(c, BucketedClients) or c.positions is ref.positions
                else self._plain(c) for c in fields]
      parts = []
      for k, pos in enumerate(ref.positions):
        here = [c.parts[k] if isinstance(c, BucketedClients) else self._gather(c, pos)
                for c in fields]
        parts.append(Clients(build_container(st, [c.value for c in here]),
                             build_container(st, [c.mapped for c in here])))
      return BucketedClients(parts, ref.positions, ref.valid, ref.n)
    return Clients(build_container(st, [c.value for c in fields]),
                   build_container(st, [c.mapped for c in fields]))

  def federated_map(self, node, v):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return fn.invoke(v)
    if isinstance(v, BucketedClients):
      outs = [self._materialize(self._map_clients(fn, p), "federated_map") for p in v.parts]
      out = scatter(outs, v.positions, v.n)
      return Clients(out, flags_like(out, True))
    return self._map_clients(fn, v)

  def fused_map_reduce(self, node, v):
    """federated_map + aggregations of its results, as one loop over clients
    carrying running sums (see `compiler/fusion.py`)."""
    if isinstance(v, Clients) and self.n is None and not any(
        jax.tree_util.tree_leaves(v.mapped)):
      # No {T}@CLIENTS argument: all clients alike, their number unknown. As
      # unfused, an unweighted mean is the value itself; the rest need n.
      for kind, _, wpath in node.attrs["reductions"]:
        if kind != "federated_mean" or wpath is not None:
          need_clients(None, kind if wpath is None else "federated_mean with weights")
      totals = self._contributions(node)(node.attrs["fn"].invoke(resolve(v.value)))
      return self._fused_finish(node, v, totals)
    return self._fused_finish(node, v, self._fused_partials(node, v))

  def federated_mean(self, node, v, w=None):
    v = self._plain(v)
    if w is None:
      def leaf(x, f):
        return jnp.mean(x, axis=0).astype(x.dtype) if f else x
      return jax.tree_util.tree_map(leaf, v.value, v.mapped)
    w = self._materialize(w, "federated_mean")

    def wleaf(x, f):
      if not f:
        return x
      # float32 arithmetic, or float64 for 64-bit values (in 64-bit mode).
      dtype = jnp.promote_types(jnp.promote_types(x.dtype, w.dtype), jnp.float32)
      weights = w.astype(dtype)
      return (jnp.tensordot(weights, x.astype(dtype), axes=1) / jnp.sum(weights)).astype(x.dtype)
    return jax.tree_util.tree_map(wleaf, v.value, v.mapped)

  def federated_sum(self, node, v):
    v = self._plain(v)

    def leaf(x, f):
      if f:
        return jnp.sum(x, axis=0).astype(x.dtype)
      return (x * need_clients(self.n, "federated_sum")).astype(x.dtype)
    return jax.tree_util.tree_map(leaf, v.value, v.mapped)

  def _check(self, ok, client, value, bound, message):
    """Records a condition checked when the program has run: `message`
    formatted with the client, value and bound (see `run`)."""
    self.checks.append((message, (jnp.asarray(ok), jnp.asarray(client, jnp.int32),
                                  jnp.asarray(value), jnp.asarray(bound))))

  def _reduce_clients(self, v, op, what):
    v = self._plain(v)

    def leaf(x, f):
      if f:
        return op(x, axis=0).astype(x.dtype)
      return x  # all clients hold it
    return jax.tree_util.tree_map(leaf, v.value, v.mapped)

  def federated_min(self, node, v):
    return self._reduce_clients(v, jnp.min, "federated_min")

  def federated_max(self, node, v):
    return self._reduce_clients(v, jnp.max, "federated_max")

  def federated_eval(self, node):
    # A jax computation is deterministic: one evaluation stands for every
    # client's (not mapped: all clients hold it).
    out = node.attrs["fn"].invoke(None)
    if node.type.placement == SERVER:
      return out
    return Clients(out, flags_like(out, False))

  def federated_select(self, node, keys, max_key, server):
    fn = node.attrs["fn"]
    keys = self._materialize(keys, "federated_select")  # [n, N]
    n, num = keys.shape
    flat = keys.reshape((n * num,))
    bad = (flat < 0) | (flat > max_key)
    first = jnp.argmax(bad)
    self._check(~jnp.any(bad), first // max(num, 1), flat[first], max_key, select_key_message)
    one = lambda k: fn.invoke((server, k))
    if self._strategy() == "vmap" and fn.batchable:
      out = jax.vmap(one)(flat)
    else:
      out = jax.lax.map(one, flat, batch_size=self.chunk_size if fn.batchable else None)
    data = jax.tree_util.tree_map(lambda x: x.reshape((n, num) + x.shape[1:]), out)
    element = node.type.member.element
    mask_shape = (n, num)
    if is_batched(element):
      mask_shape += (jax.tree_util.tree_leaves(data)[0].shape[2],)
    seq = PaddedSequence(data, jnp.ones(mask_shape, jnp.float32), element, full=True)
    return Clients(seq, flags_like(seq, True))

  def _secure(self, node, v, bound):
    name = node.attrs["name"]
    member = node.type.member
    x = self._materialize(v, name)
    leaves = tensor_leaves_of(member, x)
    bounds = [jnp.reshape(b, ()) for b in bound]
    out = []
    for a, b in zip(leaves, bounds):
      if name == "federated_secure_modular_sum":
        out.append(self._modular_sum(name, a, b))
        continue
      if name == "federated_secure_sum_bitwidth":
        self._check((b >= 0) & (b <= 62), -1, b, b, bound_check_message(name, "bitwidth"))
        limit = max_of_bitwidth(b, a.dtype)
      else:
        limit = b
      rows = a.reshape((a.shape[0], -1))
      bad = (rows < 0) | (rows > limit.astype(jnp.promote_types(limit.dtype, a.dtype)))
      per_client = jnp.any(bad, axis=1)
      client = jnp.argmax(per_client)
      value = rows[client, jnp.argmax(bad[client])] if rows.shape[1] else jnp.zeros((), a.dtype)
      label = "max_input" if name == "federated_secure_sum" else "2**bitwidth - 1 ="
      self._check(~jnp.any(per_client), client, value, limit,
                  lambda c, x, m, label=label: range_message(name, c, x, f"{label} {m}"))
      out.append(jnp.sum(a, axis=0).astype(a.dtype))
    return rebuild(member, out)

  def _modular_sum(self, name, a, m):
    """(Σᵢ aᵢ) mod m, exactly: each term reduced into [0, m) and added mod m
    in unsigned arithmetic that cannot overflow (acc + term < 2m)."""
    self._check(m >= 1, -1, m, m, bound_check_message(name, "modulus"))
    safe_m = jnp.maximum(m, 1)
    terms = jnp.mod(a, safe_m)  # in [0, m)
    wide = jnp.uint64 if jnp.dtype(terms.dtype).itemsize == 8 else jnp.uint32
    terms = terms.astype(wide)
    mw = safe_m.astype(wide)

    def add(acc, t):
      return (acc + t) % mw, None
    total, _ = jax.lax.scan(add, jnp.zeros(a.shape[1:], wide), terms)
    return total.astype(a.dtype)

  federated_secure_sum = _secure

  federated_secure_sum_bitwidth = _secure

  federated_secure_modular_sum = _secure

  def federated_aggregate(self, node, v, zero):
    # The first ceil(n/2) clients and the rest are accumulated separately,
    # each from `zero`, and merged (as on the reference backend).
    x = self._materialize(v, "federated_aggregate")
    n = need_clients(self.n, "federated_aggregate")
    acc_fn = node.attrs["accumulate"]
    zero = jax.tree_util.tree_map(jnp.asarray, zero)

    def body(acc, xi):
      return like(acc_fn.invoke((acc, xi)), acc, "federated_aggregate's accumulate"), None

    def fold(part):
      return jax.lax.scan(body, zero, part)[0]
    half = first_group(n)
    acc = fold(jax.tree_util.tree_map(lambda a: a[:half], x))
    if half < n:
      rest = fold(jax.tree_util.tree_map(lambda a: a[half:], x))
      acc = like(node.attrs["merge"].invoke((acc, rest)), acc, "federated_aggregate's merge")
    return node.attrs["report"].invoke(acc)


def wrap(t: Type, rep):
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      if isinstance(rep, BucketedSequence):
        return BucketedClients([Clients(p, flags_like(p, True)) for p in rep.parts],
                               rep.positions, rep.valid, rep.num_clients)
      if isinstance(rep, GatheredSequence):
        # Each part holds the population (not mapped) and the cohort's rows
        # of it (mapped): a client's data is read where it is used.
        parts = [Clients(LazyRows(pop, i), LazyRows(flags_like(pop, False), True))
                 for pop, i in zip(rep.populations, rep.indices)]
        return BucketedClients(parts, rep.positions, rep.valid, rep.num_clients)
      return Clients(rep, flags_like(rep, not t.all_equal))
    return rep
  if isinstance(t, StructType) and has_federated(t):
    return build_container(t, [wrap(ft, r) for ft, r in zip(t.types(), struct_fields(t, rep))])
  return rep


def unwrap(ops: VectorizedOps, t: Type, val):
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      if t.all_equal:
        return val.value
      return ops._materialize(val, "returning a CLIENTS value")
    return val
  if isinstance(t, StructType) and has_federated(t):
    return build_container(t, [unwrap(ops, ft, v) for ft, v in zip(t.types(), struct_fields(t, val))])
  return val


def leading(rep) -> int:
  if isinstance(rep, (BucketedSequence, GatheredSequence)):
    return rep.num_clients
  leaves = jax.tree_util.tree_leaves(rep)
  return int(jnp.shape(leaves[0])[0])


def raise_failed_checks(messages: list, checks: list) -> None:
  """Raises a ValueError for the first run-time check that failed."""
  for message, (ok, client, value, bound) in zip(messages, checks):
    if not bool(np.asarray(ok)):
      raise ValueError(message(int(np.asarray(client)), np.asarray(value).item(),
                               np.asarray(bound).item()))
