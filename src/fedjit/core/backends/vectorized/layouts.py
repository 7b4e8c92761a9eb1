"""The shape policy for cohorts passed as lists: `pad_clients`, with its sticky bucket layouts.

Layouts of large cohorts are remembered per (element type, cohort size) in a
`ShapePolicy`, which the vectorized backend owns (one per configuration), so
that rounds with different random cohorts reuse one compiled program.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from fedjit.core._padding import (bucket_size, flatten_elements, grown_sizes,
                                  max_leaf_sizes, pad_sequences, pow2)
from fedjit.core._sequence import PaddedSequence
from fedjit.core._types import Type, tensor_types
from fedjit.core.backends.vectorized.cohorts import Bucket, Cohort

__all__ = ["MIN_BUCKETED_COHORT", "ShapePolicy", "pad_clients"]


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


class ShapePolicy:
  """The memory of past cohorts' bucket layouts, which `pad_clients` reuses.

  For the 32 most recent (element type, cohort size) pairs, the last few
  layouts used and the padded shapes of the element leaves (see
  `pad_clients`). The vectorized backend owns one per configuration
  (`VectorizedBackend.shape_policy`); `clear()`, or the backend's `reset()`,
  forgets them. Thread-safe: cohorts may be padded ahead in another thread.

  Example:
    >>> policy = ShapePolicy()
    >>> first = pad_clients(element_type, cohort, policy)  # 100 clients
    >>> later = pad_clients(element_type, other_cohort, policy)  # first's layout, if it fits
    >>> len(policy.layouts_remembered())  # one (element type, cohort size) pair
    1
  """

  def __init__(self):
    self._memories: "collections.OrderedDict[tuple, _LayoutMemory]" = collections.OrderedDict()
    self._lock = threading.Lock()

  def clear(self) -> None:
    """Forgets the remembered bucket layouts."""
    with self._lock:
      self._memories.clear()

  def layouts_remembered(self) -> dict:
    """The number of layouts remembered per (element type, cohort size)."""
    with self._lock:
      return {key: len(m.layouts) for key, m in self._memories.items()}


def _own_layout(lengths: list[int]) -> _Layout:
  """The layout of a cohort on its own: lengths rounded up to powers of
  two, one bucket per rounded length, buckets with few clients joined to the
  next longer one, each bucket's clients rounded up to a bucket size. Equal
  lengths, or one group: one bucket with exactly the cohort's clients."""
  if len(set(lengths)) == 1:
    return _Layout([max(lengths[0], 1)], [len(lengths)])
  rounded = [pow2(max(n, 1)) for n in lengths]
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


def _choose_layout(policy: ShapePolicy, key, lengths: list[int],
                   own: _Layout) -> "tuple[_Layout, _LayoutMemory]":
  """The layout for this cohort, remembered in `policy` for the next (see pad_clients)."""
  memories = policy._memories  # pylint: disable=protected-access
  with policy._lock:  # pylint: disable=protected-access
    memory = memories.get(key)
    if memory is None:
      memory = memories[key] = _LayoutMemory()
    memories.move_to_end(key)
    while len(memories) > _LAYOUT_KEYS:
      memories.popitem(last=False)
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


def pad_clients(element_type: Type, clients: list[list], policy: "ShapePolicy | None" = None):
  """Pads a cohort's datasets for the vectorized backend.

  `policy` remembers the layouts of past cohorts (below); None pads the
  cohort on its own, remembering nothing.

  Returns a `cohorts.Cohort`:

  * Clients of equal length: one bucket, exactly that long.
  * Otherwise lengths are rounded up to powers of two (few distinct shapes,
    so few compilations; padded steps are skipped, not computed). Cohorts
    of at least 64 clients are split into one bucket per rounded length —
    buckets with few clients join the next longer one — so a few large
    clients do not make every client as large (a Cohort of several buckets).

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
      padded = pad_sequences(element_type, clients, num_elements=max(lengths[0], 1))
    else:
      padded = pad_sequences(element_type, clients,
                             num_elements=max(pow2(max(n, 1)) for n in lengths))
    return Cohort.stacked(padded, len(clients))
  leaf_types = tensor_types(element_type)
  flat = flatten_elements(element_type, clients)
  sizes = max_leaf_sizes(leaf_types, flat)
  if policy is None:
    policy = ShapePolicy()
  layout, memory = _choose_layout(policy, (element_type, len(clients)), lengths,
                                  _own_layout(lengths))
  with policy._lock:  # pylint: disable=protected-access
    if memory.leaf_sizes is not None:
      sizes = grown_sizes(sizes, memory.leaf_sizes)
    memory.leaf_sizes = sizes
  members = layout.assign(lengths)
  if len(layout.counts) == 1 and layout.counts[0] == len(clients):
    padded = pad_sequences(element_type, clients, num_elements=layout.lengths[0],
                           leaf_sizes=sizes, flat=flat)
    return Cohort.stacked(padded, len(clients))
  buckets = []
  for n, count, chosen in zip(layout.lengths, layout.counts, members):
    chosen = sorted(chosen)
    padded = [clients[i] for i in chosen] + [[] for _ in range(count - len(chosen))]
    part = pad_sequences(element_type, padded, num_elements=n, leaf_sizes=sizes,
                         flat=[flat[i] for i in chosen] + [[]] * (count - len(chosen)))
    # Not `full` even when it happens to be, so that the shapes (and static
    # flags) of a reused layout are those of every round.
    part = PaddedSequence(part.data, part.mask, element_type, full=False)
    # Filler slots (empty datasets): position len(clients), valid 0.
    pos = np.full(count, len(clients), np.int32)
    pos[:len(chosen)] = chosen
    flags = np.zeros(count, np.float32)
    flags[:len(chosen)] = 1.0
    buckets.append(Bucket(part, True, None, pos, flags))
  return Cohort(buckets, len(clients))
