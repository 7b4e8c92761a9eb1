"""Backends: `vectorized` (the default) and `reference`.

Both interpret the same graph (see `_interpreter.py`); they differ in how a
placed value is held.

* vectorized: a `{T}@CLIENTS` value is one array (per leaf) with a leading
  client axis; values that are equal on all clients (broadcasts) are kept
  once, without a client axis. `federated_map` maps over clients inside the
  compiled program (`lax.map`, i.e. a sequential loop, or `vmap`), and the
  whole federated computation is one `jax.jit` program, compiled once per
  input shape. Sequences are padded, with masks.
* reference: client by client in plain Python, without jit: slow and
  obvious, the oracle the tests compare against, and the debugging path (an
  error inside a client's computation names the computation and the client).

The backend in use is `fedjit.get_backend()`; `with fedjit.backend(...)`
selects another for a block of code.
"""

from __future__ import annotations

import contextlib
import functools
import contextvars
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core import _values
from fedjit.core._computations import (Computation, FederatedComputation,
                                       JaxComputation, executing)
from fedjit.core._errors import ClientComputationError, FederatedTypeError
from fedjit.core._fusion import fuse_map_reduce
from fedjit.core._interpreter import Ops, evaluate, select_field
from fedjit.core._ir import Node
from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._sequence import ListSequence, PaddedSequence, is_batched, like
from fedjit.core._types import (FederatedType, StructType, TensorType, Type,
                                build_container, infer_type, struct_fields)

__all__ = ["Backend", "ReferenceBackend", "VectorizedBackend", "backend",
           "get_backend", "to_jax"]

CLIENT_MAPS = ("auto", "map", "vmap")


class Backend:
  """Runs computations called from Python."""

  name: str

  def run(self, comp: Computation, args: tuple) -> Any:
    """Runs `comp` on Python arguments, one per parameter; returns the result
    as Python values (`{T}@CLIENTS` results as lists).

    Calling a computation, `comp(*args)`, ends here on the current backend;
    call `run` directly to use a backend without selecting it.

    Example:
      >>> fedjit.ReferenceBackend().run(get_average_temperature, ([68.5, 70.3, 69.8],))
      np.float32(69.53334)
    """
    raise NotImplementedError


def _param_types(comp: Computation) -> list[Type]:
  if isinstance(comp, FederatedComputation):
    return [comp.graph.nodes[i].type for i in comp.graph.params]
  p = comp.type_signature.parameter
  if p is None:
    return []
  if comp.num_params > 1:
    return list(p.types())
  return [p]


def _what(comp: Computation, i: int) -> str:
  names = comp.param_names
  return f"argument '{names[i]}' of '{comp.name}'" if i < len(names) else comp.name


def _constant(node: Node, xp=jnp):
  leaves = [xp.asarray(l) for l in node.attrs["value"]]
  return _unflatten_like(node.type, leaves)


def _unflatten_like(t: Type, leaves: list):
  example = _values._example_tree(t)
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(example), leaves)


def _num_clients(types: list[Type], reps: list, leading) -> int | None:
  sizes = set()

  def visit(t, rep):
    if isinstance(t, FederatedType):
      if t.placement == CLIENTS and not t.all_equal:
        sizes.add(leading(rep))
    elif isinstance(t, StructType):
      for ft, v in zip(t.types(), struct_fields(t, rep)):
        visit(ft, v)
  for t, r in zip(types, reps):
    visit(t, r)
  if len(sizes) > 1:
    raise FederatedTypeError(
        f"All {{T}}@CLIENTS arguments must hold one value per client, but they "
        f"have different numbers of clients: {sorted(sizes)}.")
  return sizes.pop() if sizes else None


def _need_clients(n: int | None, what: str) -> int:
  if n is None:
    raise FederatedTypeError(
        f"{what} needs the number of clients, but no argument is placed at "
        f"CLIENTS. Pass at least one {{T}}@CLIENTS argument to the computation.")
  return n


# ------------------------------------------------------------------ reference


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
    return _constant(node)

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
      _need_clients(self.n, "federated_mean with weights")
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
    _need_clients(self.n, "federated_sum")
    return jax.tree_util.tree_map(
        lambda *xs: jnp.asarray(functools.reduce(np.add, [np.asarray(x) for x in xs])), *v)

  def federated_min(self, node, v):
    return jax.tree_util.tree_map(
        lambda *xs: jnp.asarray(functools.reduce(np.minimum, [np.asarray(x) for x in xs])), *v)

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
        raise ValueError(_select_key_message(i, int(k[bad[0]]), top))
      out.append(ListSequence([_run_python(fn, (server, jnp.asarray(key)), i) for key in k],
                              node.type.member.element))
    return out

  def _secure(self, node, v, bound):
    name = node.attrs["name"]
    _need_clients(self.n, name)
    member = node.type.member
    bounds = list(bound)  # one scalar per tensor of the value
    columns = [_tensor_leaves_of(member, m) for m in v]  # [client][leaf]
    out = []
    for j, (b, leaf_type) in enumerate(zip(bounds, _leaf_types_of(member))):
      b = int(np.asarray(b).reshape(()))
      xs = [np.asarray(c[j]) for c in columns]
      dtype = leaf_type.dtype
      if name == "federated_secure_modular_sum":
        if b < 1:
          raise ValueError(_bound_message(name, "modulus", b))
        total = 0
        for x in xs:
          total = (total + np.mod(x.astype(np.int64), b)) % b
        out.append(jnp.asarray(np.asarray(total).astype(dtype)))
        continue
      if name == "federated_secure_sum_bitwidth":
        if not 0 <= b <= 62:
          raise ValueError(_bound_message(name, "bitwidth", b))
        limit, what = 2 ** b - 1, f"2**bitwidth - 1 = {2 ** b - 1} (bitwidth {b})"
      else:
        limit, what = b, f"max_input {b}"
      for i, x in enumerate(xs):
        bad = (x.astype(np.int64) < 0) | (x.astype(np.int64) > limit)
        if bad.any():
          raise ValueError(_range_message(name, i, int(x.reshape(-1)[np.argmax(bad.reshape(-1))]),
                                          what))
      out.append(jnp.asarray(functools.reduce(np.add, xs).astype(dtype)))
    return _rebuild(member, out)

  federated_secure_sum = _secure
  federated_secure_sum_bitwidth = _secure
  federated_secure_modular_sum = _secure

  def federated_aggregate(self, node, v, zero):
    # As in TFF: groups of clients are accumulated separately, each from
    # `zero`, and the partial accumulators merged. Two groups, the first
    # ceil(n/2) clients and the rest, as on the vectorized backend.
    _need_clients(self.n, "federated_aggregate")
    accumulate = node.attrs["accumulate"]

    def fold(first: int, members: list):
      acc = zero
      for i, m in enumerate(members, first):
        acc = _run_python(accumulate, (acc, m), i)
      return acc
    half = _first_group(len(v))
    acc = fold(0, v[:half])
    if half < len(v):
      acc = _run_python(node.attrs["merge"], (acc, fold(half, v[half:])), None)
    return _run_python(node.attrs["report"], acc, None)


def _leaf_types_of(t: Type) -> list:
  if isinstance(t, TensorType):
    return [t]
  return [l for e in t.types() for l in _leaf_types_of(e)]


def _tensor_leaves_of(t: Type, value) -> list:
  """The tensors of a value of type `t`, in the order of `_leaf_types_of`."""
  if isinstance(t, TensorType):
    return [value]
  return [l for ft, fv in zip(t.types(), struct_fields(t, value))
          for l in _tensor_leaves_of(ft, fv)]


def _rebuild(t: Type, leaves: list):
  it = iter(leaves)

  def build(t):
    if isinstance(t, TensorType):
      return next(it)
    return build_container(t, [build(e) for e in t.types()])
  return build(t)


def _range_message(name: str, client, value, what: str) -> str:
  return (f"fedjit.{name}: client {client} holds the value {value}, outside the "
          f"range [0, {what}] that the secure sum allows. Clip or quantize the "
          f"client values into the range in the client's computation, or raise the "
          f"bound.")


def _bound_message(name: str, what: str, value) -> str:
  allowed = {"bitwidth": "an integer in [0, 62]", "modulus": "a positive integer"}[what]
  return f"fedjit.{name} expects {what} to be {allowed}, got {value}."


def _bound_check_message(name: str, what: str):
  return lambda client, value, bound: _bound_message(name, what, value)


def _max_of_bitwidth(bits, dtype):
  """2**bits - 1 in `dtype` (the dtype's largest value where that is more)."""
  info = jnp.iinfo(dtype)
  value_bits = info.bits - (1 if info.min < 0 else 0)
  one = jnp.ones((), dtype)
  small = (one << jnp.clip(bits, 0, value_bits - 1).astype(dtype)) - one
  return jnp.where(bits >= value_bits, jnp.asarray(info.max, dtype), small)


def _select_key_message(client, key, max_key) -> str:
  return (f"fedjit.federated_select: client {client} holds the key {key}, outside "
          f"[0, max_key] = [0, {max_key}]. Keys must lie between 0 and max_key.")


def _first_group(n: int) -> int:
  """federated_aggregate's first group of clients: the first ceil(n/2)."""
  return (n + 1) // 2


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
    types = _param_types(comp)
    reps = [_values.to_reference(t, a, _what(comp, i))
            for i, (t, a) in enumerate(zip(types, args))]
    with executing():
      if isinstance(comp, FederatedComputation):
        n = _num_clients(types, reps, len)
        reps = [_replicate(t, r, n) for t, r in zip(types, reps)]
        result = comp.type_signature.result
        if n is None and _has_client_values(result):
          _need_clients(n, f"returning a value of type {result}")
        out = evaluate(comp.graph, reps, ReferenceOps(n))
      else:
        out = comp.fn(*reps)
    return _values.from_reference(comp.type_signature.result, out)


def _replicate(t: Type, rep, n: int | None):
  """An all-equal `T@CLIENTS` argument (given once) as the reference
  backend's list with one member per client."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS and t.all_equal:
      return [rep] * (n if n is not None else 1)
    return rep
  if isinstance(t, StructType) and _values._has_federated(t):
    return build_container(t, [_replicate(ft, r, n)
                               for ft, r in zip(t.types(), struct_fields(t, rep))])
  return rep


def _has_client_values(t: Type) -> bool:
  """Whether `t` holds a `{T}@CLIENTS` value (one member per client)."""
  if isinstance(t, FederatedType):
    return t.placement == CLIENTS and not t.all_equal
  return isinstance(t, StructType) and any(_has_client_values(e) for e in t.types())


# ----------------------------------------------------------------- vectorized


class Clients:
  """A CLIENTS value inside the vectorized interpreter.

  `mapped` has the structure of `value` with a bool per leaf: True where the
  leaf has a leading client axis, False where it is one value for all.
  """

  __slots__ = ("value", "mapped")

  def __init__(self, value, mapped):
    self.value = value
    self.mapped = mapped


class BucketedClients:
  """A CLIENTS value whose clients are split into size buckets (see
  `_values.BucketedSequence`): `parts[k]` holds the clients at cohort
  positions `positions[k]`; entries with `valid[k] == 0` are filler."""

  __slots__ = ("parts", "positions", "valid", "n")

  def __init__(self, parts, positions, valid, n):
    self.parts = parts
    self.positions = positions
    self.valid = valid
    self.n = n


@jax.tree_util.register_pytree_node_class
class LazyRows:
  """Rows `index` of a population, taken only where a client's data is used.

  Inside the client loop `index` is one client's row, so each client's data
  is read straight from the population (no gathered copy of the cohort)."""

  def __init__(self, population, index):
    self.population = population
    self.index = index

  def tree_flatten(self):
    return (self.population, self.index), None

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(*children)


def _resolve(value):
  """`value` with every LazyRows replaced by the rows it stands for."""
  def take(x):
    if isinstance(x, LazyRows):
      return jax.tree_util.tree_map(lambda a: a[x.index], x.population)
    return x
  return jax.tree_util.tree_map(take, value, is_leaf=lambda x: isinstance(x, LazyRows))


def _client_view(value, mapped, i):
  """Client `i`'s member of a Clients value (`value`, flags `mapped`).

  Mapped arrays are indexed; a client's dataset (a PaddedSequence of the
  cohort, or population rows) becomes a row view of it, whose elements are
  read inside the client's loop, so no copy of the client's data is made."""
  def view(x, m):
    if isinstance(x, LazyRows):
      if isinstance(x.population, PaddedSequence) and x.population.row is None:
        p = x.population
        return PaddedSequence(p.data, p.mask, p.element_type, p.full, row=x.index[i])
      return jax.tree_util.tree_map(lambda a: a[x.index[i]], x.population)
    if isinstance(x, PaddedSequence):
      flags = jax.tree_util.tree_leaves(m)
      if x.row is None and flags and all(flags):
        return PaddedSequence(x.data, x.mask, x.element_type, x.full, row=i)
      return jax.tree_util.tree_map(lambda a, f: a[i] if f else a, x, m)
    return x[i] if m else x
  return jax.tree_util.tree_map(view, value, mapped,
                                is_leaf=lambda x: isinstance(x, (LazyRows, PaddedSequence)))


def _has_lazy(value) -> bool:
  return any(isinstance(x, LazyRows) for x in jax.tree_util.tree_leaves(
      value, is_leaf=lambda x: isinstance(x, LazyRows)))


def _scatter(parts: list, positions: list, n: int):
  """Stacked per-bucket values -> one value with the cohort's client order.

  Leaves are padded to a common shape first (buckets differ in length)."""
  def leaf(*xs):
    shape = tuple(max(s) for s in zip(*[jnp.shape(x)[1:] for x in xs]))
    out = jnp.zeros((n,) + shape, xs[0].dtype)
    for x, pos in zip(xs, positions):
      x = jnp.pad(x, [(0, 0)] + [(0, t - h) for t, h in zip(shape, jnp.shape(x)[1:])])
      out = out.at[pos].set(x, mode="drop")
    return out
  return jax.tree_util.tree_map(leaf, *parts)


def _flags(value, flag: bool):
  return jax.tree_util.tree_map(lambda _: flag, value)


class VectorizedOps(Ops):
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

  def _strategy(self) -> str:
    if self.client_map == "auto":
      return "map" if jax.default_backend() == "cpu" else "vmap"
    return self.client_map

  def _plain(self, c):
    """A BucketedClients value as one Clients value (clients in cohort order)."""
    if not isinstance(c, BucketedClients):
      return c
    stacked = [self._materialize(Clients(_resolve(p.value), _flags(_resolve(p.value), True))
                                 if _has_lazy(p.value) else p, "bucketed clients")
               for p in c.parts]
    value = _scatter(stacked, c.positions, c.n)
    return Clients(value, _flags(value, True))

  def _materialize(self, c, what: str):
    c = self._plain(c)
    n = None

    def leaf(x, f):
      nonlocal n
      if f:
        return x
      n = _need_clients(self.n, what)
      return jnp.broadcast_to(x, (n,) + jnp.shape(x))
    return jax.tree_util.tree_map(leaf, c.value, c.mapped)

  def constant(self, node):
    return _constant(node)

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
    return Clients(v, _flags(v, False))

  def federated_broadcast(self, node, v):
    return Clients(v, _flags(v, False))

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

  def _gather(self, c: Clients, positions) -> Clients:
    """The clients of `c` at `positions` (filler positions clip to the last)."""
    index = jnp.minimum(positions, self.n - 1)
    return Clients(jax.tree_util.tree_map(lambda x, m: x[index] if m else x, c.value, c.mapped),
                   c.mapped)

  def federated_map(self, node, v):
    fn = node.attrs["fn"]
    if node.type.placement == SERVER:
      return fn.invoke(v)
    if isinstance(v, BucketedClients):
      outs = [self._materialize(self._map_clients(fn, p), "federated_map") for p in v.parts]
      out = _scatter(outs, v.positions, v.n)
      return Clients(out, _flags(out, True))
    return self._map_clients(fn, v)

  def _map_clients(self, fn, v: Clients) -> Clients:
    leaves, treedef = jax.tree_util.tree_flatten(v.value)
    flags = jax.tree_util.tree_leaves(v.mapped)
    if not any(flags):
      out = fn.invoke(v.value)
      return Clients(out, _flags(out, False))
    if self._strategy() == "vmap" and fn.batchable:
      axes = jax.tree_util.tree_unflatten(treedef, [0 if f else None for f in flags])
      out = jax.vmap(lambda member: fn.invoke(_resolve(member)), in_axes=(axes,))(v.value)
    else:
      mapped = [l for l, f in zip(leaves, flags) if f]

      def one(xs):
        it = iter(xs)
        full = [next(it) if f else l for l, f in zip(leaves, flags)]
        return fn.invoke(_resolve(jax.tree_util.tree_unflatten(treedef, full)))
      batch = self.chunk_size if fn.batchable else None
      if batch is None:
        # One client after another, each reading its data where it is used.
        num = jnp.shape(mapped[0])[0]
        out = jax.lax.map(lambda i: fn.invoke(_client_view(v.value, v.mapped, i)),
                          jnp.arange(num))
      else:
        out = jax.lax.map(one, mapped, batch_size=batch)
    return Clients(out, _flags(out, True))

  def fused_map_reduce(self, node, v):
    """federated_map + aggregations of its results, as one loop over clients
    carrying running sums (see `_fusion.py`)."""
    if isinstance(v, Clients) and self.n is None and not any(
        jax.tree_util.tree_leaves(v.mapped)):
      # No {T}@CLIENTS argument: all clients alike, their number unknown. As
      # unfused, an unweighted mean is the value itself; the rest need n.
      for kind, _, wpath in node.attrs["reductions"]:
        if kind != "federated_mean" or wpath is not None:
          _need_clients(None, kind if wpath is None else "federated_mean with weights")
      totals = self._contributions(node)(node.attrs["fn"].invoke(_resolve(v.value)))
      return self._fused_finish(node, v, totals)
    return self._fused_finish(node, v, self._fused_partials(node, v))

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
      totals = part_totals if totals is None else _add(totals, part_totals)
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
    out_shape = jax.eval_shape(lambda m: fn.invoke(_resolve(m)), member)
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
      parts = contributions(fn.invoke(_resolve(jax.tree_util.tree_unflatten(treedef, full))))
      if ok is not None:
        parts = jax.tree_util.tree_map(lambda p: jnp.where(ok > 0, p, jnp.zeros_like(p)), parts)
      return parts

    if not mapped:
      n = _need_clients(self.n, "federated_map")
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
        parts = contributions(fn.invoke(_client_view(v.value, v.mapped, i)))
        if valid is not None:
          ok = valid[i]
          parts = jax.tree_util.tree_map(lambda p: jnp.where(ok > 0, p, jnp.zeros_like(p)),
                                         parts)
        return _add(c, parts), None
      totals, _ = jax.lax.scan(client, zero, jnp.arange(num))
      return totals

    def block(c, xs):
      parts = jax.vmap(one)(xs)
      return _add(c, jax.tree_util.tree_map(lambda p: jnp.sum(p, axis=0), parts)), None
    blocks = [x[:whole].reshape((whole // chunk, chunk) + x.shape[1:]) for x in mapped]
    totals, _ = jax.lax.scan(block, zero, blocks)
    if whole < num:  # the clients left over after whole chunks
      rest = jax.vmap(one)([x[whole:] for x in mapped])
      totals = _add(totals, jax.tree_util.tree_map(lambda p: jnp.sum(p, axis=0), rest))
    return totals

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
      return (x * _need_clients(self.n, "federated_sum")).astype(x.dtype)
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
    return Clients(out, _flags(out, False))

  def federated_select(self, node, keys, max_key, server):
    fn = node.attrs["fn"]
    keys = self._materialize(keys, "federated_select")  # [n, N]
    n, num = keys.shape
    flat = keys.reshape((n * num,))
    bad = (flat < 0) | (flat > max_key)
    first = jnp.argmax(bad)
    self._check(~jnp.any(bad), first // max(num, 1), flat[first], max_key, _select_key_message)
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
    return Clients(seq, _flags(seq, True))

  def _secure(self, node, v, bound):
    name = node.attrs["name"]
    member = node.type.member
    x = self._materialize(v, name)
    leaves = _tensor_leaves_of(member, x)
    bounds = [jnp.reshape(b, ()) for b in bound]
    out = []
    for a, b in zip(leaves, bounds):
      if name == "federated_secure_modular_sum":
        out.append(self._modular_sum(name, a, b))
        continue
      if name == "federated_secure_sum_bitwidth":
        self._check((b >= 0) & (b <= 62), -1, b, b, _bound_check_message(name, "bitwidth"))
        limit = _max_of_bitwidth(b, a.dtype)
      else:
        limit = b
      rows = a.reshape((a.shape[0], -1))
      bad = (rows < 0) | (rows > limit.astype(jnp.promote_types(limit.dtype, a.dtype)))
      per_client = jnp.any(bad, axis=1)
      client = jnp.argmax(per_client)
      value = rows[client, jnp.argmax(bad[client])] if rows.shape[1] else jnp.zeros((), a.dtype)
      label = "max_input" if name == "federated_secure_sum" else "2**bitwidth - 1 ="
      self._check(~jnp.any(per_client), client, value, limit,
                  lambda c, x, m, label=label: _range_message(name, c, x, f"{label} {m}"))
      out.append(jnp.sum(a, axis=0).astype(a.dtype))
    return _rebuild(member, out)

  def _modular_sum(self, name, a, m):
    """(Σᵢ aᵢ) mod m, exactly: each term reduced into [0, m) and added mod m
    in unsigned arithmetic that cannot overflow (acc + term < 2m)."""
    self._check(m >= 1, -1, m, m, _bound_check_message(name, "modulus"))
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
    n = _need_clients(self.n, "federated_aggregate")
    acc_fn = node.attrs["accumulate"]
    zero = jax.tree_util.tree_map(jnp.asarray, zero)

    def body(acc, xi):
      return like(acc_fn.invoke((acc, xi)), acc, "federated_aggregate's accumulate"), None

    def fold(part):
      return jax.lax.scan(body, zero, part)[0]
    half = _first_group(n)
    acc = fold(jax.tree_util.tree_map(lambda a: a[:half], x))
    if half < n:
      rest = fold(jax.tree_util.tree_map(lambda a: a[half:], x))
      acc = like(node.attrs["merge"].invoke((acc, rest)), acc, "federated_aggregate's merge")
    return node.attrs["report"].invoke(acc)


def _add(a, b):
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


def _wrap(t: Type, rep):
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      if isinstance(rep, _values.BucketedSequence):
        return BucketedClients([Clients(p, _flags(p, True)) for p in rep.parts],
                               rep.positions, rep.valid, rep.num_clients)
      if isinstance(rep, _values.GatheredSequence):
        # Each part holds the population (not mapped) and the cohort's rows
        # of it (mapped): a client's data is read where it is used.
        parts = [Clients(LazyRows(pop, i), LazyRows(_flags(pop, False), True))
                 for pop, i in zip(rep.populations, rep.indices)]
        return BucketedClients(parts, rep.positions, rep.valid, rep.num_clients)
      return Clients(rep, _flags(rep, not t.all_equal))
    return rep
  if isinstance(t, StructType) and _values._has_federated(t):
    return build_container(t, [_wrap(ft, r) for ft, r in zip(t.types(), struct_fields(t, rep))])
  return rep


def _unwrap(ops: VectorizedOps, t: Type, val):
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      if t.all_equal:
        return val.value
      return ops._materialize(val, "returning a CLIENTS value")
    return val
  if isinstance(t, StructType) and _values._has_federated(t):
    return build_container(t, [_unwrap(ops, ft, v) for ft, v in zip(t.types(), struct_fields(t, val))])
  return val


def _leading(rep) -> int:
  if isinstance(rep, (_values.BucketedSequence, _values.GatheredSequence)):
    return rep.num_clients
  leaves = jax.tree_util.tree_leaves(rep)
  return int(jnp.shape(leaves[0])[0])


class VectorizedBackend(Backend):
  """Compiles a whole federated computation into one `jax.jit` program.

  Args:
    client_map: how `federated_map` maps over clients inside the program:
      "map" (a sequential `lax.map`: one model copy, best for small models
      on a CPU), "vmap" (all clients at once: best on accelerators), or
      "auto" (the default: "map" on CPU, "vmap" elsewhere).
    chunk_size: with "map", process this many clients at a time with vmap
      (a chunked map); None processes one at a time.
    devices: the devices to split each round's clients across ("auto": all
      local devices, e.g. several GPUs, or CPU devices made with
      `XLA_FLAGS=--xla_force_host_platform_device_count=4`; None: one).
      Each device loops over its share and the partial aggregates are added.
    stream_chunk_mb: a cohort passed as Python lists (not a Population) of
      more than 4 MB of client data and at least 32 clients is padded and
      run in chunks of clients, each at most this many megabytes and an
      eighth of the cohort (but at least 16 clients): the program of one
      chunk adds its clients to the running sums of the round's
      aggregations while the host pads the next chunk, and a final program
      finishes the round. Padding then overlaps the computation, and the
      padded copy of the cohort takes about two chunks of memory instead of
      all of it. Used when the client data reach the rest of the round only
      through client maps and their aggregations (FedAvg and its relatives,
      federated evaluation); results equal the one-program round up to
      float rounding. None: never.

  Example:
    >>> with fedjit.backend("vectorized", client_map="vmap"):
    ...   state = process.next(state, data)
  """

  name = "vectorized"

  def __init__(self, client_map: str = "auto", chunk_size: int | None = None,
               devices: "list | str | None" = "auto", stream_chunk_mb: float | None = 32.0):
    if client_map not in CLIENT_MAPS:
      raise ValueError(f"client_map must be one of {CLIENT_MAPS}, got {client_map!r}.")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
      raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    self.client_map = client_map
    self.chunk_size = chunk_size
    if devices != "auto" and devices is not None and not isinstance(devices, (list, tuple)):
      raise ValueError(f"devices must be 'auto', None or a list of JAX devices, got {devices!r}.")
    self.devices = devices
    if stream_chunk_mb is not None and (isinstance(stream_chunk_mb, bool) or not isinstance(
        stream_chunk_mb, (int, float)) or not stream_chunk_mb > 0):
      raise ValueError(f"stream_chunk_mb must be a positive number or None, got "
                       f"{stream_chunk_mb!r}.")
    self.stream_chunk_mb = stream_chunk_mb

  def __repr__(self):
    return f"VectorizedBackend(client_map={self.client_map!r}, chunk_size={self.chunk_size})"

  def resolved_devices(self) -> list | None:
    """The devices clients are split across: all local devices with "auto"."""
    if self.devices == "auto":
      return jax.local_devices()
    return list(self.devices) if self.devices else None

  def _key(self):
    devices = self.resolved_devices()
    return ("vectorized", self.client_map, self.chunk_size,
            tuple(d.id for d in devices) if devices else None)

  def resolved_client_map(self) -> str:
    """"map" or "vmap": what "auto" means on this platform."""
    if self.client_map != "auto":
      return self.client_map
    return "map" if jax.default_backend() == "cpu" else "vmap"

  def trace(self, comp: Computation, reps: list):
    """Runs `comp` on vectorized representations (inside or outside jit).

    Conditions checked at run time (a secure sum's inputs in range) are
    checked here when their values are concrete, and left out under a trace.
    """
    out, checks = self.trace_checked(comp, reps)
    if all(not isinstance(a, jax.core.Tracer) for _, arrays in checks for a in arrays):
      raise_failed_checks([m for m, _ in checks], [a for _, a in checks])
    return out

  def trace_checked(self, comp: Computation, reps: list):
    """`trace`, and the run-time checks: [(message, (ok, client, value, bound))]."""
    types = _param_types(comp)
    with executing():
      if isinstance(comp, FederatedComputation):
        n = _num_clients(types, reps, _leading)
        ops = VectorizedOps(n, self.client_map, self.chunk_size, self.resolved_devices())
        graph = comp.__dict__.setdefault("_fused_graph", fuse_map_reduce(comp.graph))
        out = evaluate(graph, [_wrap(t, r) for t, r in zip(types, reps)], ops)
        return _unwrap(ops, comp.type_signature.result, out), ops.checks
      return comp.fn(*reps), []

  def compiled(self, comp: Computation):
    """The jitted program of `comp`: `program(*reps) -> (result, checks)`,
    where `checks` are the arrays of its run-time checks (see `run`)."""
    cache = comp.__dict__.setdefault("_compiled", {})
    key = self._key()
    if key not in cache:
      traces = comp.__dict__.setdefault("_traces", {})
      messages = comp.__dict__.setdefault("_check_messages", {})

      def program(*reps):  # traced once per compilation
        traces[key] = traces.get(key, 0) + 1
        out, checks = self.trace_checked(comp, list(reps))
        messages[key] = [m for m, _ in checks]
        return out, [a for _, a in checks]
      cache[key] = jax.jit(program)
    return cache[key]

  def check_messages(self, comp: Computation) -> list:
    return comp.__dict__.get("_check_messages", {}).get(self._key(), [])

  def compilations(self, comp: Computation) -> int:
    """How many programs this backend's settings have compiled for `comp`:
    one per input shape of the one-program round, plus the chunk and final
    programs of streamed rounds (see `stream_chunk_mb`).

    Example:
      >>> fedjit.get_backend().compilations(trainer.next)  # after 100 rounds
      1
    """
    key = self._key()
    streamed = comp.__dict__.get("_stream_traces", {}).get(key, [])
    return comp.__dict__.get("_traces", {}).get(key, 0) + len(streamed)

  def run(self, comp, args):
    types = _param_types(comp)
    if self.stream_chunk_mb is not None and isinstance(comp, FederatedComputation):
      from fedjit.core import _streaming
      plan = _streaming.stream_plan(comp, types)
      if plan is not None:
        out = _streaming.run_streamed(self, comp, args, types, plan,
                                      self.stream_chunk_mb * 2 ** 20)
        if out is not None:
          return out[0]
    with _values.buffer_lease():
      reps = [_values.to_vectorized(t, a, _what(comp, i))
              for i, (t, a) in enumerate(zip(types, args))]
      out, checks = self.compiled(comp)(*reps)
      raise_failed_checks(self.check_messages(comp), checks)
      # Results are copied to NumPy here, so the program has finished with
      # its inputs when the lease returns their buffers.
      return _values.from_vectorized(comp.type_signature.result, out)


def raise_failed_checks(messages: list, checks: list) -> None:
  """Raises a ValueError for the first run-time check that failed."""
  for message, (ok, client, value, bound) in zip(messages, checks):
    if not bool(np.asarray(ok)):
      raise ValueError(message(int(np.asarray(client)), np.asarray(value).item(),
                               np.asarray(bound).item()))


# -------------------------------------------------------------------- context

_DEFAULT_BACKEND = VectorizedBackend()
_BACKEND: contextvars.ContextVar[Backend] = contextvars.ContextVar(
    "fedjit_backend", default=_DEFAULT_BACKEND)


def get_backend() -> Backend:
  """The backend that runs computations called from Python right now.

  The default is `VectorizedBackend(client_map="auto")`.

  Example:
    >>> fedjit.get_backend()
    VectorizedBackend(client_map='auto', chunk_size=None)
  """
  return _BACKEND.get()


@contextlib.contextmanager
def backend(name_or_backend: "str | Backend", **options):
  """Selects the backend for the code inside a `with` block.

  Args:
    name_or_backend: "vectorized", "reference", or a `Backend` instance.
    **options: options of the backend (see `VectorizedBackend`).

  Example:
    >>> with fedjit.backend("reference"):
    ...   print(get_average_temperature([68.5, 70.3, 69.8]))
    69.53334
  """
  if isinstance(name_or_backend, Backend):
    if options:
      raise TypeError("Options are given to the backend's constructor, not here.")
    b = name_or_backend
  elif name_or_backend == "vectorized":
    b = VectorizedBackend(**options)
  elif name_or_backend == "reference":
    if options:
      raise TypeError(f"The reference backend takes no options, got {sorted(options)}.")
    b = ReferenceBackend()
  else:
    raise ValueError(f"Unknown backend {name_or_backend!r}; expected 'vectorized' "
                     f"or 'reference'.")
  token = _BACKEND.set(b)
  try:
    yield b
  finally:
    _BACKEND.reset(token)


def execute_python_call(comp: Computation, args: tuple) -> Any:
  """Runs `comp` called from Python on the current backend."""
  if isinstance(comp, JaxComputation) and comp.polymorphic:
    try:
      types = [infer_type(a) for a in args]
    except TypeError as e:
      raise FederatedTypeError(
          f"jax_computation '{comp.name}' has no declared types and they cannot be "
          f"inferred from its arguments ({e}). Declare them: "
          f"@fedjit.jax_computation(type, ...).") from None
    ptype = None if not types else (types[0] if len(types) == 1 else StructType(types))
    comp = comp.concretize(ptype)
  n_params = len(_param_types(comp))
  if len(args) != n_params:
    raise TypeError(f"'{comp.name}' takes {n_params} argument(s), got {len(args)}.")
  return get_backend().run(comp, args)


def to_jax(comp: Computation):
  """A computation as a plain JAX function (vectorized backend), to
  differentiate, jit or vmap like any other.

  Arguments are given as for a Python call, but may be JAX tracers. Results
  stay JAX arrays; a `{T}@CLIENTS` result has a leading client axis.

  Example:
    >>> f = fedjit.to_jax(next_fn)
    >>> grad = jax.grad(lambda lr: loss(f(weights, lr, data)))(0.1)
  """
  current = get_backend()
  vb = current if isinstance(current, VectorizedBackend) else VectorizedBackend()
  types = _param_types(comp)

  def fn(*args):
    if len(args) != len(types):
      raise TypeError(f"'{comp.name}' takes {len(types)} argument(s), got {len(args)}.")
    reps = [_values.to_vectorized(t, a, _what(comp, i), xp=jnp)
            for i, (t, a) in enumerate(zip(types, args))]
    return vb.trace(comp, reps)
  fn.__name__ = comp.name
  return fn
