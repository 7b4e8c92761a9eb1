"""The vectorized backend's loops over clients: mapping a client computation over a
cohort, and the fused map-reduce loops that carry running sums (sequential,
chunked with vmap, all at once, or split across devices with `shard_map`).

`ClientLoops` is mixed into `VectorizedOps` (`intrinsics.py`), whose
constructor sets `n` (clients, or None), `client_map`, `chunk_size` and
`devices` (None for one device).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._types import Type
from fedjit.core.backends.common import need_clients
from fedjit.core.backends.interpreter import select_field
from fedjit.core.backends.vectorized.cohorts import (BucketedClients, Clients, client_view,
                                                     flags_like, has_lazy, resolve, scatter)
from fedjit.core._types import build_container

__all__ = ["ClientLoops"]


class ClientLoops:
  """The client loops of `VectorizedOps` (see the module docstring)."""

  def _strategy(self) -> str:
    if self.client_map == "auto":
      return "map" if jax.default_backend() == "cpu" else "vmap"
    return self.client_map

  def _plain(self, c):
    """A BucketedClients value as one Clients value (clients in cohort order)."""
    if not isinstance(c, BucketedClients):
      return c
    stacked = [self._materialize(Clients(resolve(p.value), flags_like(resolve(p.value), True))
                                 if has_lazy(p.value) else p, "bucketed clients")
               for p in c.parts]
    value = scatter(stacked, c.positions, c.n)
    return Clients(value, flags_like(value, True))

  def _materialize(self, c, what: str):
    c = self._plain(c)
    n = None

    def leaf(x, f):
      nonlocal n
      if f:
        return x
      n = need_clients(self.n, what)
      return jnp.broadcast_to(x, (n,) + jnp.shape(x))
    return jax.tree_util.tree_map(leaf, c.value, c.mapped)

  def _gather(self, c: Clients, positions) -> Clients:
    """The clients of `c` at `positions` (filler positions clip to the last)."""
    index = jnp.minimum(positions, self.n - 1)
    return Clients(jax.tree_util.tree_map(lambda x, m: x[index] if m else x, c.value, c.mapped),
                   c.mapped)

  def _map_clients(self, fn, v: Clients) -> Clients:
    leaves, treedef = jax.tree_util.tree_flatten(v.value)
    flags = jax.tree_util.tree_leaves(v.mapped)
    if not any(flags):
      out = fn.invoke(v.value)
      return Clients(out, flags_like(out, False))
    if self._strategy() == "vmap" and fn.batchable:
      axes = jax.tree_util.tree_unflatten(treedef, [0 if f else None for f in flags])
      out = jax.vmap(lambda member: fn.invoke(resolve(member)), in_axes=(axes,))(v.value)
    else:
      mapped = [l for l, f in zip(leaves, flags) if f]

      def one(xs):
        it = iter(xs)
        full = [next(it) if f else l for l, f in zip(leaves, flags)]
        return fn.invoke(resolve(jax.tree_util.tree_unflatten(treedef, full)))
      batch = self.chunk_size if fn.batchable else None
      if batch is None:
        # One client after another, each reading its data where it is used.
        num = jnp.shape(mapped[0])[0]
        out = jax.lax.map(lambda i: fn.invoke(client_view(v.value, v.mapped, i)),
                          jnp.arange(num))
      else:
        out = jax.lax.map(one, mapped, batch_size=batch)
    return Clients(out, flags_like(out, True))

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

  def _fused_partials(self, node, v, keep=None):
    """The running sums of a fused node over the clients of `v` (not yet
    divided by the weights). `keep` (one 0/1 flag per client of `v`, or
    None) leaves out the clients flagged 0."""
    fn = node.attrs["fn"]
    contributions = self._contributions(node)
    if isinstance(v, BucketedClients):
      parts, valids = v.parts, list(v.valid)
      if keep is not None:  # filler positions (== n) are out of range: kept 0
        flags = jnp.concatenate([keep, jnp.zeros((1,), keep.dtype)])
        valids = [ok * flags[jnp.minimum(pos, v.n)] for ok, pos in zip(valids, v.positions)]
    else:
      parts, valids = [v], [keep]
    totals = None
    for part, valid in zip(parts, valids):
      if self.devices is not None and any(jax.tree_util.tree_leaves(part.mapped)):
        part_totals = self._sharded_totals(fn, part, contributions, valid)
      else:
        part_totals = self._fused_totals(fn, part, contributions, valid)
      totals = part_totals if totals is None else tree_add(totals, part_totals)
    return totals

  def _fused_finish(self, node, v, totals):
    """The results of a fused node's reductions from its running sums."""
    fn = node.attrs["fn"]
    result_type = fn.type_signature.result
    first = v.parts[0] if isinstance(v, BucketedClients) else v
    leaves, treedef = jax.tree_util.tree_flatten(first.value)
    flags = jax.tree_util.tree_leaves(first.mapped)
    member = jax.tree_util.tree_unflatten(treedef, [
        jax.ShapeDtypeStruct(jnp.shape(l)[1:] if f else jnp.shape(l), l.dtype)
        for l, f in zip(leaves, flags)])
    out_shape = jax.eval_shape(lambda m: fn.invoke(resolve(m)), member)
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

  def _sharded_totals(self, fn, v: Clients, contributions, valid):
    """`_fused_totals` with the clients split across devices: each device
    loops over its share, then the partial sums are added (`psum`)."""
    from jax.sharding import Mesh, PartitionSpec as P
    mesh = Mesh(np.array(self.devices), ("clients",))
    d = len(self.devices)
    leaves, treedef = jax.tree_util.tree_flatten(v.value)
    flags = jax.tree_util.tree_leaves(v.mapped)
    mapped = [l for l, f in zip(leaves, flags) if f]
    fixed = [l for l, f in zip(leaves, flags) if not f]
    num = jnp.shape(mapped[0])[0]
    extra = (-num) % d  # filler clients so that every device gets as many
    ok = jnp.ones((num,), jnp.float32) if valid is None else valid
    mapped = [jnp.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1)) for x in mapped]
    ok = jnp.pad(ok, (0, extra))

    def local(mapped_here, fixed_all, ok_here):
      m_it, f_it = iter(mapped_here), iter(fixed_all)
      full = [next(m_it) if f else next(f_it) for f in flags]
      here = Clients(jax.tree_util.tree_unflatten(treedef, full), v.mapped)
      totals = self._fused_totals(fn, here, contributions, ok_here)
      return jax.lax.psum(totals, "clients")

    spec = P("clients")
    sharded = _shard_map(local, mesh, in_specs=([spec] * len(mapped), [P()] * len(fixed), spec),
                         out_specs=P())
    return sharded(mapped, fixed, ok)

  def _fused_totals(self, fn, v: Clients, contributions, valid):
    """Σ over the clients of `v` of contributions(fn(client)); clients with
    `valid == 0` (bucket filler) contribute nothing."""
    leaves, treedef = jax.tree_util.tree_flatten(v.value)
    flags = jax.tree_util.tree_leaves(v.mapped)
    mapped = [l for l, f in zip(leaves, flags) if f]
    if valid is not None:
      mapped = mapped + [valid]

    def one(xs):
      ok = None
      if valid is not None:
        xs, ok = xs[:-1], xs[-1]
      it = iter(xs)
      full = [next(it) if f else l for l, f in zip(leaves, flags)]
      parts = contributions(fn.invoke(resolve(jax.tree_util.tree_unflatten(treedef, full))))
      if ok is not None:
        parts = jax.tree_util.tree_map(lambda p: jnp.where(ok > 0, p, jnp.zeros_like(p)), parts)
      return parts

    if not mapped:
      n = need_clients(self.n, "federated_map")
      return jax.tree_util.tree_map(lambda x: x * n, one([]))
    num = jnp.shape(mapped[0])[0]
    if self._strategy() == "vmap" and fn.batchable:
      chunk = num  # all clients at once
    else:
      chunk = self.chunk_size if (self.chunk_size and fn.batchable) else 1
    chunk = min(chunk, num)
    whole = num // chunk * chunk
    zero = jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(
        one, [jax.ShapeDtypeStruct(x.shape[1:], x.dtype) for x in mapped]))
    if chunk == 1:
      # One client after another, each reading its data where it is used.
      def client(c, i):
        parts = contributions(fn.invoke(client_view(v.value, v.mapped, i)))
        if valid is not None:
          ok = valid[i]
          parts = jax.tree_util.tree_map(lambda p: jnp.where(ok > 0, p, jnp.zeros_like(p)),
                                         parts)
        return tree_add(c, parts), None
      totals, _ = jax.lax.scan(client, zero, jnp.arange(num))
      return totals

    def block(c, xs):
      parts = jax.vmap(one)(xs)
      return tree_add(c, jax.tree_util.tree_map(lambda p: jnp.sum(p, axis=0), parts)), None
    blocks = [x[:whole].reshape((whole // chunk, chunk) + x.shape[1:]) for x in mapped]
    totals, _ = jax.lax.scan(block, zero, blocks)
    if whole < num:  # the clients left over after whole chunks
      rest = jax.vmap(one)([x[whole:] for x in mapped])
      totals = tree_add(totals, jax.tree_util.tree_map(lambda p: jnp.sum(p, axis=0), rest))
    return totals


def tree_add(a, b):
  return jax.tree_util.tree_map(jnp.add, a, b)


def _weighted(w, x):
  """w * x in float32, or in float64 for 64-bit values (in 64-bit mode)."""
  dtype = jnp.promote_types(jnp.promote_types(w.dtype, x.dtype), jnp.float32)
  return w.astype(dtype) * x.astype(dtype)


def _shard_map(f, mesh, in_specs, out_specs):
  """`jax.shard_map` (or its older home in jax.experimental)."""
  # Client code is ordinary JAX that knows nothing of the device axis, so the
  # replication checks are off; the partial sums are added explicitly (psum).
  if hasattr(jax, "shard_map"):
    return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  from jax.experimental.shard_map import shard_map
  return shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def _at(t: Type, value, path):
  """The part of `value` (of type `t`) at a path of field indices."""
  for i in path:
    value = select_field(t, value, i)
    t = t.types()[i]
  return value
