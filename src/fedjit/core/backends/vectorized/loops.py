"""The one client loop of the vectorized backend (`client_loop`), and the plan
(`LoopPlan`) that says how it runs: clients one after another, in vmapped
blocks, all at once, or split across devices.

Every intrinsic that runs something per client goes through `client_loop`:
`federated_map` (results stacked), the fused map-reduce (running sums),
`federated_aggregate` (a fold, one client at a time), `federated_select`
(one call per key) and, chunk by chunk, a streamed round. The strategy is
resolved in one place, `LoopPlan.width`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core.backends.vectorized.cohorts import Bucket

__all__ = ["LoopPlan", "client_loop", "tree_add"]


class LoopPlan:
  """How client loops run, from the backend's settings.

  Args:
    client_map: "map" (clients in sequence, or in vmapped blocks of
      `chunk_size`), "vmap" (all clients of a bucket at once), or "auto"
      ("map" on CPU, "vmap" elsewhere).
    chunk_size: clients per vmapped block with "map" (None: one at a time).
    devices: devices to split reductions over clients across (None: one).

  Example:
    >>> LoopPlan("map", 4, None).width(batchable=True, slots=10)
    4
  """

  def __init__(self, client_map: str, chunk_size: int | None, devices: list | None = None):
    if client_map == "auto":
      client_map = "map" if jax.default_backend() == "cpu" else "vmap"
    self.client_map = client_map
    self.chunk_size = chunk_size
    self.devices = list(devices) if devices and len(devices) > 1 else None

  def width(self, batchable: bool, slots: int) -> int:
    """Clients per vmapped block for a loop over `slots` clients: 1 (one
    after another) for work that cannot be batched (`batchable=False`, e.g.
    a client computation with host callbacks)."""
    if not batchable:
      return 1
    if self.client_map == "vmap":
      return max(slots, 1)
    return max(1, min(self.chunk_size or 1, slots))


def tree_add(a, b):
  return jax.tree_util.tree_map(jnp.add, a, b)


def client_loop(fn, bucket: Bucket, width: int, fold=None, init=None):
  """Runs `fn(member)` for every client slot of `bucket`, `width` at a time.

  With `fold=None` the results are stacked along the bucket's slots.
  Otherwise `carry = fold(carry, results, valid)` runs over blocks of
  clients, from `init`: `results` have a leading axis of the block's
  clients and `valid` is the block's part of `bucket.valid` (None: no
  filler). With `width == 1` each client reads its data where it uses it
  (row views: no copy of the client's dataset); wider blocks take their
  clients' rows at once and vmap `fn` over them.

  Example:
    >>> b = Bucket(jnp.arange(5.0), True)
    >>> client_loop(lambda x: 2 * x, b, 1).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0]
    >>> float(client_loop(lambda x: x, b, 2, fold=lambda c, r, ok: c + r.sum(), init=0.0))
    10.0
  """
  k = bucket.size
  valid = bucket.valid
  if width <= 1:
    if fold is None:
      return jax.lax.map(lambda i: fn(bucket.client(i)), jnp.arange(k))

    def step(carry, i):
      out = jax.tree_util.tree_map(lambda x: x[None], fn(bucket.client(i)))
      return fold(carry, out, None if valid is None else valid[i][None]), None
    return jax.lax.scan(step, init, jnp.arange(k))[0]

  leaves, treedef = jax.tree_util.tree_flatten(bucket.source)
  flags = bucket.flags
  axes = jax.tree_util.tree_unflatten(treedef, [0 if f else None for f in flags])
  rows = bucket.rows
  # What is sliced into blocks: the mapped leaves, or the rows to read.
  sliced = [l for l, f in zip(leaves, flags) if f] if rows is None else [rows]
  if valid is not None:
    sliced = sliced + [valid]

  def block(xs):
    """The results of a block of clients (`xs`: their part of `sliced`)."""
    ok = xs[-1] if valid is not None else None
    xs = xs[:-1] if valid is not None else xs
    it = iter(xs if rows is None else [l[xs[0]] for l, f in zip(leaves, flags) if f])
    full = [next(it) if f else l for l, f in zip(leaves, flags)]
    member = jax.tree_util.tree_unflatten(treedef, full)
    return jax.vmap(fn, in_axes=(axes,))(member), ok

  width = min(width, k)
  whole = k // width * width
  if whole == k and width == k:  # one block: all clients at once
    out, ok = block(sliced)
    return out if fold is None else fold(init, out, ok)
  blocks = [x[:whole].reshape((whole // width, width) + x.shape[1:]) for x in sliced]
  rest = [x[whole:] for x in sliced] if whole < k else None
  if fold is None:
    out = jax.lax.map(lambda xs: block(xs)[0], blocks)
    out = jax.tree_util.tree_map(lambda x: x.reshape((whole,) + x.shape[2:]), out)
    if rest is not None:
      out = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), out, block(rest)[0])
    return out

  def step(carry, xs):
    out, ok = block(xs)
    return fold(carry, out, ok), None
  carry = jax.lax.scan(step, init, blocks)[0]
  if rest is not None:  # the clients left over after whole blocks
    out, ok = block(rest)
    carry = fold(carry, out, ok)
  return carry


def sharded_loop(fn, bucket: Bucket, plan: LoopPlan, batchable: bool, fold, zero):
  """`client_loop` with a fold from `zero` (running sums), the bucket's
  clients split across `plan.devices`: each device loops over its share
  and the partial sums are added (`psum`). Filler slots added so that every
  device gets as many clients have `valid` 0."""
  from jax.sharding import Mesh, PartitionSpec as P
  mesh = Mesh(np.array(plan.devices), ("clients",))
  d = len(plan.devices)
  leaves, treedef = jax.tree_util.tree_flatten(bucket.source)
  flags = bucket.flags
  k = bucket.size
  extra = (-k) % d
  ok = jnp.ones((k,), jnp.float32) if bucket.valid is None else bucket.valid
  ok = jnp.pad(ok, (0, extra))

  def pad(x):
    return jnp.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1))
  rows = bucket.rows
  if rows is None:  # each device gets its clients' data
    split = [pad(l) for l, f in zip(leaves, flags) if f]
    whole = [l for l, f in zip(leaves, flags) if not f]
  else:  # each device gets its clients' rows of the (replicated) source
    split = [pad(rows)]
    whole = leaves

  def local(split_here, whole_all, ok_here):
    if rows is None:
      s_it, w_it = iter(split_here), iter(whole_all)
      full = [next(s_it) if f else next(w_it) for f in flags]
      here = Bucket(jax.tree_util.tree_unflatten(treedef, full), bucket.mapped, None, None,
                    ok_here)
    else:
      here = Bucket(jax.tree_util.tree_unflatten(treedef, whole_all), bucket.mapped,
                    split_here[0], None, ok_here)
    width = plan.width(batchable, here.size)
    return jax.lax.psum(client_loop(fn, here, width, fold, zero), "clients")

  spec = P("clients")
  sharded = _shard_map(local, mesh, in_specs=([spec] * len(split), [P()] * len(whole), spec),
                       out_specs=P())
  return sharded(split, whole, ok)


def _shard_map(f, mesh, in_specs, out_specs):
  """`jax.shard_map` (or its older home in jax.experimental)."""
  # Client code is ordinary JAX that knows nothing of the device axis, so the
  # replication checks are off; the partial sums are added explicitly (psum).
  if hasattr(jax, "shard_map"):
    return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
  from jax.experimental.shard_map import shard_map
  return shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)
