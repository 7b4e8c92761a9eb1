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
from fedjit.core.backends.vectorized.cohorts import Bucket, Cohort, zip_buckets
from fedjit.core.backends.vectorized.loops import LoopPlan, client_loop, sharded_loop, tree_add

__all__ = ["VectorizedOps", "raise_failed_checks"]


class VectorizedOps(Ops):
  """Implements intrinsics over cohorts (`cohorts.Cohort`), traced under jit.

  Every client-side intrinsic runs through `loops.client_loop`, as `plan`
  (a `loops.LoopPlan`) says. `stream` (or None) is the stage of a streamed
  round (`streaming.Stage`), which takes over the fused map-reduces it
  streams.
  """

  def __init__(self, num_clients: int | None, plan: LoopPlan, stream=None):
    self.n = num_clients
    self.plan = plan
    self.stream = stream
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
        return value.map_buckets(lambda b: b.with_source(select_field(st, b.source, index),
                                                         select_field(st, b.mapped, index)))
      return select_field(st, value, index)
    return select_field(source_type, value, index)

  def federated_value(self, node, v):
    if node.type.placement == SERVER:
      return v
    return Cohort.uniform(v, self.n)

  def federated_broadcast(self, node, v):
    return Cohort.uniform(v, self.n)

  def federated_zip(self, node, v):
    st = node.type.member
    fields = struct_fields(st, v)
    if node.type.placement == SERVER:
      return v
    # The fields in the buckets of the one with the most buckets, preferring
    # one with positions (a Population's, read lazily): the others are taken
    # at its clients' positions (see `Cohort.like`).
    ref = max(fields, key=lambda c: (len(c.buckets), not c.is_plain, not c.is_uniform))
    fields = [c.like(ref) for c in fields]
    buckets = [zip_buckets(list(parts), lambda xs: build_container(st, xs))
               for parts in zip(*[c.buckets for c in fields])]
    return Cohort(buckets, ref.num_clients)

  def _width(self, fn, bucket: Bucket) -> int:
    return self.plan.width(fn.batchable, bucket.size)

  def federated_map(self, node, v):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return fn.invoke(v)
    if v.is_uniform:  # all clients alike: computed once
      return Cohort.uniform(fn.invoke(v.buckets[0].source), v.num_clients)
    out = []
    for b in v.buckets:
      results = client_loop(fn.invoke, b, self._width(fn, b))
      out.append(Bucket(results, True, None, b.positions, b.valid))
    return Cohort(out, v.num_clients)

  def fused_map_reduce(self, node, v):
    """federated_map + aggregations of its results, as one client loop
    carrying running sums (see `compiler/fusion.py`)."""
    if self.stream is not None:
      out = self.stream.fused_map_reduce(self, node, v)
      if out is not NotImplemented:
        return out
    if v.is_uniform and self.n is None:
      # No {T}@CLIENTS argument: all clients alike, their number unknown. As
      # unfused, an unweighted mean is the value itself; the rest need n.
      for kind, _, wpath in node.attrs["reductions"]:
        if kind != "federated_mean" or wpath is not None:
          need_clients(None, kind if wpath is None else "federated_mean with weights")
      totals = self._contributions(node)(node.attrs["fn"].invoke(v.buckets[0].source))
      return self.fused_finish(node, v, totals)
    return self.fused_finish(node, v, self.fused_partials(node, v))

  def _contributions(self, node):
    """client result -> its terms of every reduction of a fused node."""
    result_type = node.attrs["fn"].type_signature.result

    def contributions(out):
      parts = []
      for kind, vpath, wpath in node.attrs["reductions"]:
        value = _at(result_type, out, vpath)
        if kind == "federated_sum":
          parts.append(value)
        else:
          w = jnp.float32(1.0) if wpath is None else _at(result_type, out, wpath)
          w = w.astype(jnp.promote_types(w.dtype, jnp.float32))
          # float32 sums, or float64 for 64-bit values (in 64-bit mode).
          parts.append((jax.tree_util.tree_map(lambda x: _weighted(w, x), value), w))
      return parts
    return contributions

  def fused_partials(self, node, v: Cohort):
    """The running sums of a fused node over the clients of `v` (not yet
    divided by the weights); filler slots (`valid` 0) add nothing."""
    fn = node.attrs["fn"]
    contributions = self._contributions(node)

    def per_client(member):
      return contributions(fn.invoke(member))
    if v.is_uniform:
      n = need_clients(self.n, "federated_map")
      return jax.tree_util.tree_map(lambda x: x * n, per_client(v.buckets[0].source))
    totals = None
    for b in v.buckets:
      zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                    jax.eval_shape(per_client, b.member_shapes()))
      if self.plan.devices is not None:
        part = sharded_loop(per_client, b, self.plan, fn.batchable, _masked_sum, zero)
      else:
        part = client_loop(per_client, b, self._width(fn, b), _masked_sum, zero)
      totals = part if totals is None else tree_add(totals, part)
    return totals

  def fused_finish(self, node, v: Cohort, totals):
    """The results of a fused node's reductions from its running sums."""
    fn = node.attrs["fn"]
    result_type = fn.type_signature.result
    out_shape = jax.eval_shape(fn.invoke, v.buckets[0].member_shapes())
    results = []
    for (kind, vpath, _), total in zip(node.attrs["reductions"], totals):
      dtypes = jax.tree_util.tree_map(lambda x: x.dtype, _at(result_type, out_shape, vpath))
      if kind == "federated_sum":
        results.append(jax.tree_util.tree_map(lambda t, d: t.astype(d), total, dtypes))
      else:
        weighted, weight = total
        results.append(jax.tree_util.tree_map(lambda t, d: (t / weight).astype(d),
                                              weighted, dtypes))
    return build_container(node.type, results)

  def _in_order(self, v: Cohort, what: str):
    """Every client's value of `v`, stacked in cohort order."""
    if v.is_uniform:
      need_clients(self.n if v.num_clients is None else v.num_clients, what)
    return v.in_order()

  def federated_mean(self, node, v, w=None):
    b = v.plain().buckets[0]
    if w is None:
      def leaf(x, f):
        return jnp.mean(x, axis=0).astype(x.dtype) if f else x
      return jax.tree_util.tree_map(leaf, b.source, b.mapped)
    w = self._in_order(w, "federated_mean")

    def wleaf(x, f):
      if not f:
        return x
      # float32 arithmetic, or float64 for 64-bit values (in 64-bit mode).
      dtype = jnp.promote_types(jnp.promote_types(x.dtype, w.dtype), jnp.float32)
      weights = w.astype(dtype)
      return (jnp.tensordot(weights, x.astype(dtype), axes=1) / jnp.sum(weights)).astype(x.dtype)
    return jax.tree_util.tree_map(wleaf, b.source, b.mapped)

  def federated_sum(self, node, v):
    b = v.plain().buckets[0]

    def leaf(x, f):
      if f:
        return jnp.sum(x, axis=0).astype(x.dtype)
      return (x * need_clients(self.n, "federated_sum")).astype(x.dtype)
    return jax.tree_util.tree_map(leaf, b.source, b.mapped)

  def _check(self, ok, client, value, bound, message):
    """Records a condition checked when the program has run: `message`
    formatted with the client, value and bound (see `run`)."""
    self.checks.append((message, (jnp.asarray(ok), jnp.asarray(client, jnp.int32),
                                  jnp.asarray(value), jnp.asarray(bound))))

  def _reduce_clients(self, v, op):
    b = v.plain().buckets[0]

    def leaf(x, f):
      if f:
        return op(x, axis=0).astype(x.dtype)
      return x  # all clients hold it
    return jax.tree_util.tree_map(leaf, b.source, b.mapped)

  def federated_collect(self, node, v):
    # Every client's value in cohort order (filler dropped): cohort x value
    # size at the server.
    return self._in_order(v, "federated_collect")

  def federated_min(self, node, v):
    return self._reduce_clients(v, jnp.min)

  def federated_max(self, node, v):
    return self._reduce_clients(v, jnp.max)

  def federated_eval(self, node):
    # A jax computation is deterministic: one evaluation stands for every
    # client's (all clients hold it).
    out = node.attrs["fn"].invoke(None)
    if node.type.placement == SERVER:
      return out
    return Cohort.uniform(out, self.n)

  def federated_select(self, node, keys, max_key, server):
    fn = node.attrs["fn"]
    keys = self._in_order(keys, "federated_select")  # [n, N]
    n, num = keys.shape
    flat = keys.reshape((n * num,))
    bad = (flat < 0) | (flat > max_key)
    first = jnp.argmax(bad)
    self._check(~jnp.any(bad), first // max(num, 1), flat[first], max_key, select_key_message)
    # One call per (client, key), through the client loop.
    by_key = Bucket(flat, True)
    out = client_loop(lambda k: fn.invoke((server, k)), by_key, self._width(fn, by_key))
    data = jax.tree_util.tree_map(lambda x: x.reshape((n, num) + x.shape[1:]), out)
    element = node.type.member.element
    mask_shape = (n, num)
    if is_batched(element):
      mask_shape += (jax.tree_util.tree_leaves(data)[0].shape[2],)
    seq = PaddedSequence(data, jnp.ones(mask_shape, jnp.float32), element, full=True)
    return Cohort.stacked(seq, n)

  def _secure(self, node, v, bound):
    name = node.attrs["name"]
    member = node.type.member
    x = self._in_order(v, name)
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
    # each from `zero`, one client at a time through the client loop, and
    # merged (as on the reference backend).
    x = self._in_order(v, "federated_aggregate")
    n = need_clients(self.n, "federated_aggregate")
    acc_fn = node.attrs["accumulate"]
    zero = jax.tree_util.tree_map(jnp.asarray, zero)

    def fold(acc, xs, ok):  # xs: one client's value (a block of one)
      member = jax.tree_util.tree_map(lambda a: a[0], xs)
      return like(acc_fn.invoke((acc, member)), acc, "federated_aggregate's accumulate")

    def fold_part(part):
      return client_loop(lambda member: member, Bucket(part, True), 1, fold, zero)
    half = first_group(n)
    acc = fold_part(jax.tree_util.tree_map(lambda a: a[:half], x))
    if half < n:
      rest = fold_part(jax.tree_util.tree_map(lambda a: a[half:], x))
      acc = like(node.attrs["merge"].invoke((acc, rest)), acc, "federated_aggregate's merge")
    return node.attrs["report"].invoke(acc)


def _masked_sum(carry, results, valid):
  """carry + the sum of a block of clients' results, filler (valid 0) left out."""
  if valid is not None:
    results = jax.tree_util.tree_map(
        lambda p: jnp.where(valid.reshape((-1,) + (1,) * (p.ndim - 1)) > 0, p,
                            jnp.zeros_like(p)), results)
  return tree_add(carry, jax.tree_util.tree_map(lambda p: jnp.sum(p, axis=0), results))


def _weighted(w, x):
  """w * x in float32, or in float64 for 64-bit values (in 64-bit mode)."""
  dtype = jnp.promote_types(jnp.promote_types(w.dtype, x.dtype), jnp.float32)
  return w.astype(dtype) * x.astype(dtype)


def _at(t: Type, value, path):
  """The part of `value` (of type `t`) at a path of field indices."""
  for i in path:
    value = select_field(t, value, i)
    t = t.types()[i]
  return value


def wrap(t: Type, rep, n: int | None):
  """A program argument as the interpreter's value: `{T}@CLIENTS` values are
  Cohorts already (`conversions.to_vectorized`); an all-equal one becomes a
  Cohort of one value for all."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS and not isinstance(rep, Cohort):
      return Cohort.uniform(rep, n)
    return rep
  if isinstance(t, StructType) and has_federated(t):
    return build_container(t, [wrap(ft, r, n) for ft, r in zip(t.types(), struct_fields(t, rep))])
  return rep


def unwrap(ops: VectorizedOps, t: Type, val):
  """The interpreter's result as the program's: `{T}@CLIENTS` values stacked
  in cohort order (an all-equal one as its one value)."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      if t.all_equal:
        return val.buckets[0].source
      return ops._in_order(val, "returning a CLIENTS value")  # pylint: disable=protected-access
    return val
  if isinstance(t, StructType) and has_federated(t):
    return build_container(t, [unwrap(ops, ft, v) for ft, v in zip(t.types(), struct_fields(t, val))])
  return val


def leading(rep) -> int:
  """The number of clients of a `{T}@CLIENTS` argument (a Cohort)."""
  return rep.num_clients


def raise_failed_checks(messages: list, checks: list) -> None:
  """Raises a ValueError for the first run-time check that failed."""
  for message, (ok, client, value, bound) in zip(messages, checks):
    if not bool(np.asarray(ok)):
      raise ValueError(message(int(np.asarray(client)), np.asarray(value).item(),
                               np.asarray(bound).item()))
