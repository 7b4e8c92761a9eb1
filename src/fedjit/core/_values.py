"""Converting Python values to and from each backend's representation.

Python side (what users pass and get back):
  * tensors: NumPy arrays, JAX arrays or Python numbers;
  * structures: tuples, lists, dicts, namedtuples;
  * sequences: a list (or any iterable) of elements, e.g. batches;
  * `{T}@CLIENTS`: a list with one member per client, or an array (or pytree
    of arrays) with a leading client axis; results come back as lists;
  * `T@SERVER` and `T@CLIENTS` (all equal): the plain member value.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._errors import FederatedTypeError
from fedjit.core._placements import CLIENTS
from fedjit.core._sequence import ListSequence, PaddedSequence, is_batched
from fedjit.core._types import (FederatedType, SequenceType, StructType,
                                TensorType, Type, build_container, infer_type,
                                struct_fields)

__all__ = [
    "normalize", "to_reference", "from_reference", "to_vectorized",
    "from_vectorized", "pad_sequences", "abstract_value", "describe",
]


def describe(value: Any) -> str:
  """A short description of a Python value for error messages (its type)."""
  try:
    return str(infer_type(value))
  except TypeError:
    return f"a {type(value).__name__}"


def _mismatch(t: Type, value: Any, what: str = "", hint: str = "") -> FederatedTypeError:
  where = f" for {what}" if what else ""
  return FederatedTypeError(
      f"Expected a value of type {t}{where}, got {describe(value)}. {hint}".rstrip())


def _tensor(t: TensorType, value: Any, xp, what: str):
  if isinstance(value, (Type, FederatedType)):
    raise _mismatch(t, value, what)
  if isinstance(value, jax.core.Tracer) or isinstance(value, jax.Array):
    arr = value
    given = np.dtype(value.dtype)
  else:
    try:
      arr = np.asarray(value)
    except Exception as e:  # ragged lists and the like
      raise _mismatch(t, value, what) from e
    if arr.dtype == object:
      raise _mismatch(t, value, what)
    given = arr.dtype
  if given != t.dtype and not np.can_cast(given, t.dtype, "same_kind"):
    raise FederatedTypeError(
        f"Expected a value of type {t}{' for ' + what if what else ''}, got dtype "
        f"{given.name} with shape {list(np.shape(arr))}, which cannot be safely cast "
        f"to {t.dtype.name}. Convert it first, e.g. with "
        f"np.asarray(x, np.{t.dtype.name}).")
  shape = tuple(np.shape(arr))
  if len(shape) != len(t.shape) or any(
      d is not None and d != s for d, s in zip(t.shape, shape)):
    given_t = TensorType(given, shape)
    raise FederatedTypeError(
        f"Expected a value of type {t}{' for ' + what if what else ''}, got "
        f"{given_t} (shape {list(shape)}).")
  if given != t.dtype:
    arr = xp.asarray(arr, dtype=t.dtype)
  return xp.asarray(arr) if xp is jnp else np.asarray(arr)


def normalize(t: Type, value: Any, xp=np, what: str = "") -> Any:
  """Checks a non-federated `value` against `t`; returns arrays in containers.

  Sequences become lists of normalized elements.
  """
  if isinstance(t, TensorType):
    return _tensor(t, value, xp, what)
  if isinstance(t, StructType):
    try:
      fields = struct_fields(t, value)
    except TypeError as e:
      raise _mismatch(t, value, what, str(e)) from None
    return build_container(t, [normalize(ft, v, xp, what) for ft, v in zip(t.types(), fields)])
  if isinstance(t, SequenceType):
    if isinstance(value, (np.ndarray, jax.Array)) or isinstance(value, (str, bytes)):
      raise _mismatch(t, value, what, "A sequence is passed as a list of elements "
                      "(for example batches), or a fedjit Dataset.")
    elements = _elements_of(value, t, what)
    fast = _fast_element_check(t.element) if xp is np else None
    out = []
    for e in elements:
      checked = fast(e) if fast is not None else None
      out.append(checked if checked is not None else normalize(t.element, e, xp, what))
    return out
  raise _mismatch(t, value, what)


def _fast_element_check(t: Type):
  """A quick check for the common case of sequence elements that are NumPy
  arrays of exactly the right dtype (in a tuple, list or dict): returns the
  element (in the type's container) or None to take the general path."""
  def leaf_check(lt: TensorType):
    dtype, ndim = lt.dtype, len(lt.shape)
    if ndim and lt.shape[0] is None and None not in lt.shape[1:]:
      tail = tuple(lt.shape[1:])  # a batch of fixed-shape examples: the usual case
      return lambda v: (type(v) is np.ndarray and v.dtype == dtype and v.ndim == ndim
                        and v.shape[1:] == tail)
    return lambda v: (type(v) is np.ndarray and v.dtype == dtype and v.ndim == ndim
                      and all(d is None or d == n for d, n in zip(lt.shape, v.shape)))

  if isinstance(t, TensorType):
    ok = leaf_check(t)
    return lambda e: e if ok(e) else None
  if not isinstance(t, StructType) or not all(isinstance(f, TensorType) for f in t.types()):
    return None
  names, types = t.names(), t.types()
  checks = [leaf_check(lt) for lt in types]
  keyed = all(n is not None for n in names)
  same_tuple = t.container is tuple or (t.container is None and not any(names))

  def check(e):
    if type(e) in (tuple, list) and len(e) == len(types):
      fields = e
    elif keyed and type(e) is dict and len(e) == len(names):
      try:
        fields = [e[n] for n in names]
      except KeyError:
        return None
    else:
      return None
    for v, ok in zip(fields, checks):
      if not ok(v):
        return None
    if same_tuple and type(e) is tuple:
      return e
    return build_container(t, list(fields))
  return check


def _elements_of(value, t: SequenceType, what: str) -> list:
  if hasattr(value, "as_elements"):
    return list(value.as_elements())
  try:
    return list(value)
  except TypeError:
    raise _mismatch(t, value, what, "A sequence is passed as a list of elements "
                    "(for example batches), or a fedjit Dataset.") from None


def _client_members(t: FederatedType, value: Any, what: str) -> list:
  """Splits a `{T}@CLIENTS` Python value into a list of member values."""
  if isinstance(value, list):
    return value
  if isinstance(value, GatheredSequence):  # a Population's cohort, on the reference backend
    check_prepared(t, value, what)
    return value.members()
  member = t.member
  if not isinstance(member, SequenceType):
    leaves = jax.tree_util.tree_leaves(value)
    if leaves and all(hasattr(l, "shape") for l in leaves):
      sizes = {np.shape(l)[0] if np.ndim(l) else None for l in leaves}
      if len(sizes) == 1 and None not in sizes:
        n = sizes.pop()
        try:
          return [jax.tree_util.tree_map(lambda l: l[i], value) for i in range(n)]
        except Exception:
          pass
  if isinstance(value, tuple) and not hasattr(value, "_fields"):
    return list(value)
  raise FederatedTypeError(
      f"Expected a value of type {t}{' for ' + what if what else ''}: a list with "
      f"one {member} per client, or an array with a leading client axis; got "
      f"{describe(value)}.")


def client_what(what: str, i: int) -> str:
  """How errors name client `i` of an argument described by `what`."""
  return f"{what + ', ' if what else ''}client {i}"


def _placed_members(t: FederatedType, value: Any, xp, what: str):
  """Returns (members, is_list) for a federated Python value."""
  if t.placement == CLIENTS and not t.all_equal:
    members = _client_members(t, value, what)
    if not members:
      raise FederatedTypeError(
          f"Expected at least one client's value for {t}"
          f"{' (' + what + ')' if what else ''}, got an empty list.")
    out = []
    for i, m in enumerate(members):
      out.append(normalize(t.member, m, xp, client_what(what, i)))
    return out, True
  return normalize(t.member, value, xp, what), False


# ----------------------------------------------------------------- reference


def _ref_member(t: Type, normalized: Any) -> Any:
  if isinstance(t, SequenceType):
    return ListSequence([_ref_member(t.element, e) for e in normalized], t.element)
  return jax.tree_util.tree_map(jnp.asarray, normalized)


def to_reference(t: Type, value: Any, what: str = "") -> Any:
  """Python value -> reference representation (CLIENTS values are lists)."""
  if isinstance(t, FederatedType):
    members, is_list = _placed_members(t, value, np, what)
    if is_list:
      return [_ref_member(t.member, m) for m in members]
    return _ref_member(t.member, members)
  if isinstance(t, StructType) and _has_federated(t):
    fields = struct_fields(t, value)
    return build_container(t, [to_reference(ft, v, what) for ft, v in zip(t.types(), fields)])
  return _ref_member(t, normalize(t, value, np, what))


def _to_numpy(t: Type, rep: Any) -> Any:
  if isinstance(t, SequenceType):
    if isinstance(rep, PaddedSequence):
      return unpad(rep)
    return [_to_numpy(t.element, e) for e in rep.elements]
  if isinstance(t, StructType):
    fields = struct_fields(t, rep)
    return build_container(t, [_to_numpy(ft, v) for ft, v in zip(t.types(), fields)])
  # A copy: results may alias pooled input buffers (a program may return an
  # input unchanged), and those are reused by the next round.
  arr = np.array(rep, copy=True)
  return arr[()] if arr.ndim == 0 else arr


def from_reference(t: Type, rep: Any) -> Any:
  """Reference representation -> Python value (NumPy arrays, lists)."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS:
      return [_to_numpy(t.member, m) for m in rep] if not t.all_equal else _to_numpy(
          t.member, rep[0])
    return _to_numpy(t.member, rep)
  if isinstance(t, StructType) and _has_federated(t):
    fields = struct_fields(t, rep)
    return build_container(t, [from_reference(ft, v) for ft, v in zip(t.types(), fields)])
  return _to_numpy(t, rep)


def _has_federated(t: Type) -> bool:
  if isinstance(t, FederatedType):
    return True
  return isinstance(t, StructType) and any(_has_federated(e) for e in t.types())


# ---------------------------------------------------------------- vectorized


def _leaf_types(t: Type) -> list[TensorType]:
  if isinstance(t, TensorType):
    return [t]
  return [l for e in t.types() for l in _leaf_types(e)]


_LEASE: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "fedjit_buffer_lease", default=None)
_POOL: dict[tuple, list[np.ndarray]] = {}
_POOL_LOCK = threading.Lock()
_POOL_PER_SHAPE = 2


class BufferLease:
  """Reuses the large input buffers of rounds.

  Buffers made while the lease is active (`with lease:`) are recorded;
  `release()` returns them to a small pool for later rounds, once nothing
  uses them any more. Fresh memory costs page faults on every round
  (hundreds of milliseconds for a cohort of EMNIST-sized clients); reused
  memory does not.
  """

  def __init__(self):
    self.taken: list[np.ndarray] = []
    self._tokens: list = []

  def __enter__(self):
    self._tokens.append(_LEASE.set(self.taken))
    return self

  def __exit__(self, *exc):
    _LEASE.reset(self._tokens.pop())

  def release(self) -> None:
    with _POOL_LOCK:
      for buf in self.taken:
        free = _POOL.setdefault((buf.shape, buf.dtype.str), [])
        if len(free) < _POOL_PER_SHAPE:
          free.append(buf)
    self.taken = []


@contextlib.contextmanager
def buffer_lease():
  """A `BufferLease` released when the block ends (the caller must be done
  with the buffers by then)."""
  lease = BufferLease()
  try:
    with lease:
      yield lease
  finally:
    lease.release()


def aligned_zeros(shape: tuple, dtype, zero: bool = True) -> np.ndarray:
  """A zero array whose memory is 64-byte aligned: JAX's CPU backend then
  uses it without copying, so passing client data to a round costs nothing.
  Inside `buffer_lease`, buffers of earlier rounds are reused (not zeroed
  with `zero=False`: the caller writes every element)."""
  dtype = np.dtype(dtype)
  taken = _LEASE.get()
  if taken is not None:
    key = (tuple(int(d) for d in shape), dtype.str)
    with _POOL_LOCK:
      free = _POOL.get(key)
      buf = free.pop() if free else None
    if buf is not None:
      if zero:
        buf.fill(0)
    else:
      buf = _aligned_zeros(shape, dtype)
    taken.append(buf)
    return buf
  return _aligned_zeros(shape, dtype)


def _aligned_zeros(shape: tuple, dtype: np.dtype) -> np.ndarray:
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  buf = np.zeros(nbytes + 64, np.uint8)
  offset = (-buf.ctypes.data) % 64
  return buf[offset:offset + nbytes].view(dtype).reshape(shape)


_STEPS = (4, 5, 6, 7)  # quarter-octave steps: 4·2^k, 5·2^k, 6·2^k, 7·2^k


def bucket_size(n: int) -> int:
  """The padded size for `n`: the smallest of 1..8, 10, 12, 14, 16, 20, 24,
  28, 32, 40, ... (four steps per power of two) that is at least `n`.

  The number of elements (batches) of padded sequences is rounded up to
  these few sizes, so a compiled round is reused when the clients of
  different rounds hold slightly different amounts of data, at the cost of
  at most a quarter more (masked, skipped) steps. Batch sizes are not rounded.
  """
  if n <= 8:
    return max(int(n), 1)
  scale = 1
  while True:
    for step in _STEPS:
      if step * 2 * scale >= n:
        return step * 2 * scale
    scale *= 2


def _max_leaf_sizes(leaf_types: list[TensorType], flat: list[list]) -> list[tuple]:
  """Largest size of every dimension of every leaf across all elements."""
  sizes = []
  for j, lt in enumerate(leaf_types):
    dims = list(lt.shape)
    for k, d in enumerate(dims):
      if d is None:
        dims[k] = max([e[j].shape[k] for c in flat for e in c] + [1])
    sizes.append(tuple(dims))
  return sizes


def grown_sizes(sizes: list[tuple], remembered: list[tuple]) -> list[tuple]:
  """Leaf shapes at least as large as both `sizes` and `remembered`, so
  that later cohorts keep the padded shapes (and compiled programs) of
  earlier ones."""
  return [tuple(max(a, b) for a, b in zip(s, m)) for s, m in zip(sizes, remembered)]


def _flatten_elements(element_type: Type, clients: list[list]) -> list[list]:
  """Each client's (normalized) elements as lists of leaves, in JAX's order."""
  if isinstance(element_type, TensorType):
    return [[[e] for e in c] for c in clients]
  if (isinstance(element_type, StructType) and element_type.container in (tuple, list)
      and all(isinstance(f, TensorType) for f in element_type.types())):
    return [[list(e) for e in c] for c in clients]  # positional: JAX's order
  return [[jax.tree_util.tree_leaves(e) for e in c] for c in clients]


def pad_sequences(element_type: Type, clients: list[list], xp=np,
                  num_elements: int | None = None,
                  leaf_sizes: list[tuple] | None = None,
                  flat: list[list] | None = None) -> PaddedSequence:
  """Pads each client's list of (normalized) elements into one PaddedSequence.

  The result has a leading client axis: data leaves `[C, N, ...]` and mask
  `[C, N, B]` (batched elements) or `[C, N]`, where N is the most elements any
  client has and B the largest batch. `leaf_sizes` (one shape per leaf, at
  least the largest present) pads every leaf to a given shape instead;
  `flat` (each client's elements as lists of leaves) saves flattening again.
  """
  batched = is_batched(element_type)
  leaf_types = _leaf_types(element_type)
  num_clients = len(clients)
  longest = max([len(c) for c in clients] + [1])
  n = bucket_size(longest) if num_elements is None else num_elements
  if n < longest:
    raise ValueError(f"num_elements={n} is less than the longest sequence ({longest}).")
  if flat is None:
    flat = _flatten_elements(element_type, clients)
  sizes = _max_leaf_sizes(leaf_types, flat) if leaf_sizes is None else list(leaf_sizes)
  bs = sizes[0][0] if batched else None
  if xp is not np:
    return _pad_traceable(element_type, flat, n, sizes, leaf_types, bs)
  # Buffers are not zeroed up front: every client's slab is written in full
  # below (its data, then zeros after it), so memory is touched only once.
  data = [aligned_zeros((num_clients, n) + s, lt.dtype, zero=False)
          for s, lt in zip(sizes, leaf_types)]
  mask = aligned_zeros((num_clients, n, bs) if batched else (num_clients, n), np.float32)
  def fill(ci: int) -> None:
    c = flat[ci]
    total = _contiguous(c, sizes) if batched and c else -1
    if total >= 0:
      # Full batches and a smaller last one: the client's examples are rows
      # 0..total of its slab, in order, copied with one call per leaf.
      for j in range(len(leaf_types)):
        slab = data[j][ci].reshape((n * bs,) + sizes[j][1:])
        np.concatenate([leaves[j] for leaves in c], axis=0, out=slab[:total])
        slab[total:] = 0
      mask[ci].reshape(-1)[:total] = 1.0
      return
    for j in range(len(leaf_types)):
      data[j][ci] = 0
    for ei, leaves in enumerate(c):
      for j, leaf in enumerate(leaves):
        data[j][(ci, ei) + tuple(slice(0, s) for s in np.shape(leaf))] = leaf
      if batched:
        mask[ci, ei, :np.shape(leaves[0])[0]] = 1.0
      else:
        mask[ci, ei] = 1.0

  for ci in range(num_clients):
    fill(ci)
  treedef = jax.tree_util.tree_structure(_example_tree(element_type))
  return PaddedSequence(jax.tree_util.tree_unflatten(treedef, data), mask, element_type,
                        full=bool(mask.all()))


@jax.tree_util.register_pytree_node_class
class BucketedSequence:
  """Client datasets of very different lengths, grouped into size buckets.

  `parts[k]` is a PaddedSequence (leading client axis) holding the clients
  whose positions in the cohort are `positions[k]`; clients added to round a
  bucket's client count up to a bucket size have position `num_clients` (out
  of range) and `valid` 0. Each bucket is padded only to its own length, so
  a few large clients do not make every client as large.
  """

  def __init__(self, parts, positions, valid, num_clients: int, element_type: Type):
    self.parts = list(parts)
    self.positions = list(positions)
    self.valid = list(valid)
    self.num_clients = num_clients
    self.element_type = element_type

  def tree_flatten(self):
    return (self.parts, self.positions, self.valid), (self.num_clients, self.element_type)

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(children[0], children[1], children[2], aux[0], aux[1])


def _pow2(n: int) -> int:
  return 1 << max(int(n) - 1, 0).bit_length()


MIN_BUCKETED_COHORT = 64

# Sticky layouts (see `pad_clients`): per (element type, cohort size), the
# last few bucket layouts used, so that later cohorts reuse their shapes.
_LAYOUT_KEYS = 32        # (element type, cohort size) pairs remembered (LRU)
_LAYOUTS_PER_KEY = 3     # layouts remembered per pair (most recently used first)
_LAYOUT_WASTE = 2.0      # reuse while padded steps <= this x typical own layout
_LAYOUT_HISTORY = 16     # own-layout costs kept per pair (for their median)
_LAYOUT_HEADROOM = 1.0   # spare slots when a layout grows: this x sqrt(count)


class _Layout:
  """Bucket lengths (ascending) and the client slots of each."""

  __slots__ = ("lengths", "counts")

  def __init__(self, lengths, counts):
    self.lengths = tuple(int(n) for n in lengths)
    self.counts = tuple(int(c) for c in counts)

  def __eq__(self, other):
    return (isinstance(other, _Layout) and self.lengths == other.lengths
            and self.counts == other.counts)

  def __hash__(self):
    return hash((self.lengths, self.counts))

  def __repr__(self):
    return f"_Layout({self.lengths}, {self.counts})"

  @property
  def cost(self) -> int:
    """Padded steps: the elements of all slots of all buckets."""
    return sum(n * c for n, c in zip(self.lengths, self.counts))

  def slots_above(self, t: int) -> int:
    """Slots in buckets longer than `t` (the slots a client longer than t may use)."""
    return sum(c for n, c in zip(self.lengths, self.counts) if n > t)

  def assign(self, lengths: list[int]) -> list[list[int]] | None:
    """Clients (cohort positions) per bucket, or None if they do not fit.

    Clients in order of length go to the shortest bucket at least as long
    with a free slot. This finds a fit whenever one exists: a client can use
    the buckets from the first long enough one on (nested sets), and a
    client placed in bucket k passed over only full buckets, so if a client
    finds every bucket from its first one on full, some run of buckets k..
    is full of clients that cannot use a bucket before k, plus this one:
    more clients than those buckets' slots (Hall's condition fails).
    """
    free = list(self.counts)
    out: list[list[int]] = [[] for _ in free]
    k = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
      # Buckets passed over are full or too short, for this client and all
      # later (longer) ones.
      while k < len(free) and (free[k] == 0 or self.lengths[k] < lengths[i]):
        k += 1
      if k == len(free):
        return None
      free[k] -= 1
      out[k].append(i)
    return out


class _LayoutMemory:
  __slots__ = ("layouts", "own_costs", "leaf_sizes")

  def __init__(self):
    self.layouts: list[_Layout] = []
    self.own_costs: list[int] = []
    self.leaf_sizes: list[tuple] | None = None


_layouts: "collections.OrderedDict[tuple, _LayoutMemory]" = collections.OrderedDict()
_layouts_lock = threading.Lock()


def clear_layouts() -> None:
  """Forgets the remembered bucket layouts (see `pad_clients`)."""
  with _layouts_lock:
    _layouts.clear()


def _own_layout(lengths: list[int]) -> _Layout:
  """The layout of a cohort on its own: lengths rounded up to powers of
  two, one bucket per rounded length, buckets with few clients joined to the
  next longer one, each bucket's clients rounded up to a bucket size. Equal
  lengths, or one group: one bucket with exactly the cohort's clients."""
  if len(set(lengths)) == 1:
    return _Layout([max(lengths[0], 1)], [len(lengths)])
  rounded = [_pow2(max(n, 1)) for n in lengths]
  groups: dict[int, int] = {}
  for n in rounded:
    groups[n] = groups.get(n, 0) + 1
  small = max(8, len(lengths) // 16)
  keys = sorted(groups)
  for a, b in zip(keys, keys[1:]):
    if groups[a] < small:
      groups[b] += groups.pop(a)
  if len(groups) == 1:
    return _Layout([max(rounded)], [len(lengths)])
  keys = sorted(groups)
  return _Layout(keys, [bucket_size(groups[n]) for n in keys])


def _grown_layout(old: _Layout, lengths: list[int], own: _Layout) -> _Layout:
  """The smallest layout (up to rounding and headroom) that fits every cohort
  `old` fits and also this one: buckets at the lengths of both, and for
  each bucket boundary t at least as many slots longer than t as `old` has
  and as this cohort has clients longer than t (plus headroom, except in
  the longest bucket, where slots are dear)."""
  bounds = sorted(set(old.lengths) | set(own.lengths))
  counts = [0] * len(bounds)
  above = 0
  longer = np.sort(np.asarray(lengths))
  for k in range(len(bounds) - 1, -1, -1):
    t = bounds[k - 1] if k else 0
    need = len(longer) - int(np.searchsorted(longer, t, side="right"))
    if 0 < k < len(bounds) - 1 and need:
      need += int(np.ceil(_LAYOUT_HEADROOM * np.sqrt(need)))
    need = max(need, old.slots_above(t))
    if need > above:
      counts[k] = bucket_size(need - above)
      above += counts[k]
  kept = [(n, c) for n, c in zip(bounds, counts) if c]
  return _Layout([n for n, _ in kept], [c for _, c in kept])


def _choose_layout(key, lengths: list[int], own: _Layout) -> "tuple[_Layout, _LayoutMemory]":
  """The layout for this cohort, remembered for the next (see pad_clients)."""
  with _layouts_lock:
    memory = _layouts.get(key)
    if memory is None:
      memory = _layouts[key] = _LayoutMemory()
    _layouts.move_to_end(key)
    while len(_layouts) > _LAYOUT_KEYS:
      _layouts.popitem(last=False)
    memory.own_costs = (memory.own_costs + [own.cost])[-_LAYOUT_HISTORY:]
    usual = _LAYOUT_WASTE * float(np.median(memory.own_costs))
    limit = max(own.cost, usual)
    fitting = [l for l in memory.layouts if l.cost <= limit and l.assign(lengths) is not None]
    if fitting:
      chosen = min(fitting, key=lambda l: l.cost)
    else:
      grown = [_grown_layout(l, lengths, own) for l in memory.layouts]
      # Growing a layout (the cheapest) is preferred to a new one, so that
      # the layouts converge.
      chosen = min([g for g in grown if g.cost <= limit] or [own], key=lambda l: l.cost)
      if chosen.cost > usual:
        # An outlier (e.g. a huge client): used for this round only, so that
        # later rounds keep their usual layouts.
        return chosen, memory
      if chosen in grown:  # it replaces the layout it grew from
        del memory.layouts[grown.index(chosen)]
    if chosen in memory.layouts:
      memory.layouts.remove(chosen)
    memory.layouts.insert(0, chosen)
    del memory.layouts[_LAYOUTS_PER_KEY:]
    return chosen, memory


def pad_clients(element_type: Type, clients: list[list]):
  """Pads a cohort's datasets for the vectorized backend.

  * Clients of equal length: one PaddedSequence, exactly that long.
  * Otherwise lengths are rounded up to powers of two (few distinct shapes,
    so few compilations; padded steps are skipped, not computed). Cohorts
    of at least 64 clients are split into one bucket per rounded length —
    buckets with few clients join the next longer one — so a few large
    clients do not make every client as large: a BucketedSequence.

  Layouts of cohorts of at least 64 clients are sticky, so that rounds with
  different random cohorts reuse one compiled program: for each (element
  type, cohort size) the last few layouts used (bucket lengths, client slots
  per bucket, and the padded shape of every element leaf) are remembered
  (for the 32 most recent such pairs). A cohort that fits a remembered
  layout — clients, in order of length, each take the shortest bucket long
  enough with a free slot — uses it unchanged (clients keep their cohort
  positions, so results are the same). One that fits none grows the
  cheapest one it can: buckets at both layouts' lengths, with for every
  bucket boundary as many slots beyond it as either needs plus about one
  standard deviation of headroom (sqrt of the count), so that a layout
  stops growing after a few rounds.

  Padding waste is bounded: a layout is used only if its padded steps are
  at most twice the median padded steps of the recent cohorts' own layouts
  (or this cohort's own, if more). The median of recent cohorts, not this
  cohort's own layout, is the yardstick, because with long-tailed sizes the
  own layout's cost varies several-fold from round to round with its one or
  two longest clients; a layout sized for the usual longest clients costs
  about 1.5x a round's own layout on average then (checked on lognormal
  sizes: 3-10 layouts in 100 rounds of 64-200 clients). A round over the
  bound (e.g. one huge client) gets a layout of its own that is not
  remembered, so it doesn't make later rounds slow. Element leaves are padded
  to the largest shape seen for the pair (e.g. the batch size, when a
  bucket holds only clients with one short batch), for the same reason.
  """
  lengths = [len(c) for c in clients]
  if len(clients) < MIN_BUCKETED_COHORT:
    if len(set(lengths)) == 1:
      return pad_sequences(element_type, clients, num_elements=max(lengths[0], 1))
    return pad_sequences(element_type, clients,
                         num_elements=max(_pow2(max(n, 1)) for n in lengths))
  leaf_types = _leaf_types(element_type)
  flat = _flatten_elements(element_type, clients)
  sizes = _max_leaf_sizes(leaf_types, flat)
  layout, memory = _choose_layout((element_type, len(clients)), lengths, _own_layout(lengths))
  with _layouts_lock:
    if memory.leaf_sizes is not None:
      sizes = grown_sizes(sizes, memory.leaf_sizes)
    memory.leaf_sizes = sizes
  members = layout.assign(lengths)
  if len(layout.counts) == 1 and layout.counts[0] == len(clients):
    return pad_sequences(element_type, clients, num_elements=layout.lengths[0], leaf_sizes=sizes,
                         flat=flat)
  parts, positions, valid = [], [], []
  for n, count, chosen in zip(layout.lengths, layout.counts, members):
    chosen = sorted(chosen)
    padded = [clients[i] for i in chosen] + [[] for _ in range(count - len(chosen))]
    part = pad_sequences(element_type, padded, num_elements=n, leaf_sizes=sizes,
                         flat=[flat[i] for i in chosen] + [[]] * (count - len(chosen)))
    # Not `full` even when it happens to be, so that the shapes (and static
    # flags) of a reused layout are those of every round.
    parts.append(PaddedSequence(part.data, part.mask, element_type, full=False))
    pos = np.full(count, len(clients), np.int32)
    pos[:len(chosen)] = chosen
    positions.append(pos)
    flags = np.zeros(count, np.float32)
    flags[:len(chosen)] = 1.0
    valid.append(flags)
  return BucketedSequence(parts, positions, valid, len(clients), element_type)


@jax.tree_util.register_pytree_node_class
class GatheredSequence:
  """A cohort taken, inside the compiled program, from a padded population.

  `populations[k]` holds every client of length bucket k (plus one empty
  client at the end, for filler); `indices[k]` are the rows this round uses,
  `positions[k]` their places in the cohort (filler: `num_clients`), `valid[k]`
  0 for filler. The populations stay on the device across rounds, so a round
  moves only these small index arrays.
  """

  def __init__(self, populations, indices, positions, valid, num_clients: int,
               element_type: Type):
    self.populations = list(populations)
    self.indices = list(indices)
    self.positions = list(positions)
    self.valid = list(valid)
    self.num_clients = num_clients
    self.element_type = element_type

  def tree_flatten(self):
    return ((self.populations, self.indices, self.positions, self.valid),
            (self.num_clients, self.element_type))

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(*children, aux[0], aux[1])

  def members(self) -> list[list]:
    """The cohort's datasets as lists of (NumPy) elements, in cohort order."""
    out: list = [None] * self.num_clients
    for pop, idx, pos, ok in zip(self.populations, self.indices, self.positions, self.valid):
      for row, at, real in zip(np.asarray(idx), np.asarray(pos), np.asarray(ok)):
        if real > 0:
          out[int(at)] = unpad(jax.tree_util.tree_map(lambda x: x[int(row)], pop))
    return out


def check_prepared(t: FederatedType, value, what: str = "") -> None:
  """Raises unless a prepared cohort (padded or gathered) holds `t`'s elements."""
  member = t.member
  if not (t.placement == CLIENTS and isinstance(member, SequenceType)
          and value.element_type == member.element):
    raise FederatedTypeError(
        f"Expected a value of type {t}{' for ' + what if what else ''}, got a prepared cohort "
        f"of {{<{value.element_type}>*}}@CLIENTS (e.g. from a Population built for another "
        f"computation). Build the Population with this process or computation.")


class Population:
  """Every client of a federated dataset, padded once, in length buckets.

  Example:
    >>> population = Population(data_type.member, [client_data.create_dataset_for_client(c)
    ...                                            for c in client_data.client_ids])
    >>> cohort = population.gather([3, 17, 42])   # pass to next() as the client data
  """

  def __init__(self, member_type: SequenceType, datasets: list, device_put: bool = True):
    element = member_type.element
    members = [normalize(member_type, d, np, f"client {i}") for i, d in enumerate(datasets)]
    groups: dict[int, list[int]] = {}
    for i, m in enumerate(members):
      groups.setdefault(_pow2(max(len(m), 1)), []).append(i)
    self.element_type = element
    self.where = np.zeros((len(members), 2), np.int64)  # client -> (bucket, row)
    self.populations = []
    for b, n in enumerate(sorted(groups)):
      ids = groups[n]
      padded = pad_sequences(element, [members[i] for i in ids] + [[]], num_elements=n)
      # `full` describes the real clients: the filler client's results are
      # discarded, so its (all-padding) steps need no skipping.
      padded = PaddedSequence(padded.data, padded.mask, element,
                              full=bool(np.asarray(padded.mask)[:-1].all()))
      self.populations.append(jax.device_put(padded) if device_put else padded)
      self.where[ids, 0] = b
      self.where[ids, 1] = np.arange(len(ids))
    self.sizes = [len(groups[n]) for n in sorted(groups)]
    self._caps: dict[int, list[int]] = {}

  @property
  def nbytes(self) -> int:
    return sum(l.nbytes for p in self.populations for l in jax.tree_util.tree_leaves(p))

  def capacities(self, cohort: int) -> list[int]:
    """Slots per bucket for cohorts of this size: the expected count plus four
    standard deviations (at most the cohort). Fixed per cohort size, so
    every round has the same shapes and the program compiles once; a round
    that overflows a bucket (rare) raises its capacity for later rounds."""
    if cohort not in self._caps:
      total = sum(self.sizes)
      caps = []
      for size in self.sizes:
        f = size / total
        expected = cohort * f + 4.0 * np.sqrt(cohort * f * (1.0 - f)) + 2.0
        caps.append(int(min(cohort, np.ceil(expected))))
      self._caps[cohort] = caps
    return self._caps[cohort]

  def gather(self, clients: "list[int] | np.ndarray") -> GatheredSequence:
    """The cohort of these client indices (in this order)."""
    clients = np.asarray(clients, np.int64)
    buckets = self.where[clients, 0]
    caps = self.capacities(len(clients))
    indices, positions, valid, pops = [], [], [], []
    for b, pop in enumerate(self.populations):
      chosen = np.nonzero(buckets == b)[0]
      if len(chosen) > caps[b]:
        caps[b] = bucket_size(len(chosen))
      count = caps[b]
      idx = np.full(count, self.sizes[b], np.int32)  # the empty filler client
      idx[:len(chosen)] = self.where[clients[chosen], 1]
      pos = np.full(count, len(clients), np.int32)
      pos[:len(chosen)] = chosen
      ok = np.zeros(count, np.float32)
      ok[:len(chosen)] = 1.0
      pops.append(pop)
      indices.append(idx)
      positions.append(pos)
      valid.append(ok)
    return GatheredSequence(pops, indices, positions, valid, len(clients), self.element_type)


def _contiguous(client: list, sizes: list) -> int:
  """The client's number of rows if its batches are all full except perhaps
  the last, with every other dimension at its padded size (so each leaf can
  be copied at once), else -1."""
  bs = sizes[0][0]
  tails = [tuple(s[1:]) for s in sizes]
  last = len(client) - 1
  total = 0
  for i, leaves in enumerate(client):
    rows = leaves[0].shape[0] if hasattr(leaves[0], "shape") else np.shape(leaves[0])[0]
    if rows != bs and i != last:
      return -1
    for leaf, tail in zip(leaves, tails):
      shape = leaf.shape if hasattr(leaf, "shape") else np.shape(leaf)
      if shape[0] != rows or tuple(shape[1:]) != tail:
        return -1
    total += rows
  return total


def _pad_traceable(element_type, flat, n, sizes, leaf_types, bs) -> PaddedSequence:
  """pad_sequences with jax.numpy, for elements that may be JAX tracers."""
  data = []
  for j, (size, lt) in enumerate(zip(sizes, leaf_types)):
    per_client = []
    for c in flat:
      rows = [jnp.pad(jnp.asarray(e[j], lt.dtype),
                      [(0, full - have) for full, have in zip(size, jnp.shape(e[j]))])
              for e in c]
      rows += [jnp.zeros(size, lt.dtype)] * (n - len(c))
      per_client.append(jnp.stack(rows))
    data.append(jnp.stack(per_client))
  mask = np.zeros((len(flat), n, bs) if bs is not None else (len(flat), n), np.float32)
  for ci, c in enumerate(flat):
    for ei, leaves in enumerate(c):
      if bs is not None:
        mask[ci, ei, :np.shape(leaves[0])[0]] = 1.0
      else:
        mask[ci, ei] = 1.0
  treedef = jax.tree_util.tree_structure(_example_tree(element_type))
  return PaddedSequence(jax.tree_util.tree_unflatten(treedef, data), jnp.asarray(mask),
                        element_type)


def _example_tree(t: Type):
  if isinstance(t, TensorType):
    return 0
  return build_container(t, [_example_tree(e) for e in t.types()])


def unpad(seq: PaddedSequence) -> list:
  """A single (unstacked) PaddedSequence -> list of real elements."""
  mask = np.asarray(seq.mask)
  out = []
  for i in range(mask.shape[0]):
    if seq.batched:
      k = int(mask[i].sum())
      if k == 0:
        continue
      out.append(jax.tree_util.tree_map(lambda x: np.asarray(x[i, :k]), seq.data))
    elif mask[i] > 0:
      # Scalars as NumPy scalars, as the reference backend returns them.
      out.append(jax.tree_util.tree_map(lambda x: _scalar_or_array(np.asarray(x[i])),
                                        seq.data))
  return out


def _scalar_or_array(a: np.ndarray):
  return a[()] if a.ndim == 0 else a


def _stack(members: list, xp=np):
  if xp is np:
    def stack(*xs):
      out = aligned_zeros((len(xs),) + np.shape(xs[0]), np.asarray(xs[0]).dtype)
      for i, x in enumerate(xs):
        out[i] = x
      return out
    return jax.tree_util.tree_map(stack, *members)
  return jax.tree_util.tree_map(lambda *xs: xp.stack(xs), *members)


def _check_same_shapes(t: FederatedType, members: list, what: str) -> None:
  """Raises if clients' values of a `{T}@CLIENTS` type (not a sequence)
  differ in shape: they are stacked along a client axis."""
  leaf_types = _leaf_types(t.member)
  first = [tuple(np.shape(l)) for l in jax.tree_util.tree_leaves(members[0])]
  for i, m in enumerate(members[1:], 1):
    shapes = [tuple(np.shape(l)) for l in jax.tree_util.tree_leaves(m)]
    for j, (a, b) in enumerate(zip(first, shapes)):
      if a == b:
        continue
      part = f" (its {leaf_types[j]} part)" if len(leaf_types) > 1 else ""
      raise FederatedTypeError(
          f"Expected clients' values of {t}{' for ' + what if what else ''} to have "
          f"one shape on the vectorized backend, which stacks them along a client "
          f"axis, but client 0 has shape {list(a)} and client {i} has shape "
          f"{list(b)}{part}. For data whose size differs between clients, declare a "
          f"sequence (fedjit.SequenceType(...): one element per example or batch), "
          f"which the vectorized backend pads and masks; or run this computation "
          f"on the reference backend: `with fedjit.backend('reference'): ...`.")


def _vec_member(t: Type, normalized: Any, xp=np) -> Any:
  if isinstance(t, SequenceType):
    padded = pad_sequences(t.element, [normalized], xp)
    return jax.tree_util.tree_map(lambda x: x[0], padded)
  return normalized


def to_vectorized(t: Type, value: Any, what: str = "", xp=np) -> Any:
  """Python value -> vectorized representation (a pytree of arrays).

  `{T}@CLIENTS` values get a leading client axis; sequences are padded.
  """
  if isinstance(t, FederatedType):
    if isinstance(value, (PaddedSequence, BucketedSequence, GatheredSequence)):
      check_prepared(t, value, what)
      return value  # already padded (prepared ahead, e.g. by run_training)
    members, is_list = _placed_members(t, value, xp, what)
    if not is_list:
      return _vec_member(t.member, members, xp)
    if isinstance(t.member, SequenceType):
      if xp is np:
        return pad_clients(t.member.element, members)
      return pad_sequences(t.member.element, members, xp)
    _check_same_shapes(t, members, what)
    return _stack(members, xp)
  if isinstance(t, StructType) and _has_federated(t):
    fields = struct_fields(t, value)
    return build_container(t, [to_vectorized(ft, v, what, xp) for ft, v in zip(t.types(), fields)])
  return _vec_member(t, normalize(t, value, xp, what), xp)


def from_vectorized(t: Type, rep: Any) -> Any:
  """Vectorized representation -> Python value (CLIENTS values as lists)."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS and not t.all_equal:
      n = _num_rows(rep)
      return [_to_numpy(t.member, jax.tree_util.tree_map(lambda x: x[i], rep))
              for i in range(n)]
    return _to_numpy(t.member, rep)
  if isinstance(t, StructType) and _has_federated(t):
    fields = struct_fields(t, rep)
    return build_container(t, [from_vectorized(ft, v) for ft, v in zip(t.types(), fields)])
  return _to_numpy(t, rep)


def _num_rows(rep) -> int:
  leaves = jax.tree_util.tree_leaves(rep)
  return int(np.shape(leaves[0])[0]) if leaves else 0


# ------------------------------------------------------------------ abstract


def abstract_value(t: Type, dims) -> Any:
  """Abstract (ShapeDtypeStruct) value of a non-federated type for tracing.

  `dims` is a callable `dims(key) -> dimension` giving symbolic sizes: keys
  `"n"` (number of elements), `"b"` (batch) and `"?k"` for other unknowns.
  """
  if isinstance(t, TensorType):
    # Leading unknown sizes of one parameter share a symbol (a batch axis).
    shape = tuple((dims("lead") if k == 0 else dims(None)) if d is None else d
                  for k, d in enumerate(t.shape))
    return jax.ShapeDtypeStruct(shape, t.dtype)
  if isinstance(t, StructType):
    return build_container(t, [abstract_value(e, dims) for e in t.types()])
  if isinstance(t, SequenceType):
    n = dims("n")
    batched = is_batched(t.element)
    b = dims("b") if batched else None

    def elem(et):
      if isinstance(et, TensorType):
        rest = tuple(dims(None) if d is None else d for d in et.shape[1 if batched else 0:])
        lead = (n, b) if batched else (n,)
        return jax.ShapeDtypeStruct(lead + rest, et.dtype)
      return build_container(et, [elem(e) for e in et.types()])

    mask = jax.ShapeDtypeStruct((n, b) if batched else (n,), np.float32)
    return PaddedSequence(elem(t.element), mask, t.element)
  raise TypeError(f"No abstract value for {t}.")
