"""The one representation of a cohort in the vectorized backend: a `Cohort` is a
list of `Bucket`s, each some of the cohort's clients as rows of a source.

Every `{T}@CLIENTS` value is a Cohort, from the arguments of a round to the
results of each intrinsic: client datasets passed as lists (padded at once in
one bucket, or in size buckets by `layouts.pad_clients`), the cohort of a
`Population` (its rows, read from the padded population on the device),
a streamed chunk of clients, a device's share of a sharded round, the
stacked results of a client map, and a broadcast value (one value for all).

A bucket has

* `source`: a pytree whose *mapped* leaves have a leading axis of rows (one
  row per client, or a whole population's rows), and whose other leaves are
  one value for all of the bucket's clients (`mapped` says which, per leaf);
* `rows`: which source rows the bucket's clients are (None: all, in order);
* `positions`: the clients' places in the cohort (None: 0, 1, ...);
* `valid`: 1.0 for a client, 0.0 for filler (None: no filler).

One filler convention: a filler slot has `valid` 0 and position
`num_clients` (out of range, so it is dropped when buckets are put back into
cohort order), and its row is a real row of the source (of an empty client
in a population, or a copy of a client in a streamed chunk), so the client
loop can run it like any other and leave its result out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._errors import FederatedTypeError
from fedjit.core._padding import bucket_size, pad_sequences, pow2, unpad
from fedjit.core._placements import CLIENTS
from fedjit.core._sequence import PaddedSequence
from fedjit.core._types import FederatedType, SequenceType
from fedjit.core._values import client_what, normalize

__all__ = ["Bucket", "Cohort", "Population", "check_prepared", "prepare_population"]


def _is_sequence(x) -> bool:
  return isinstance(x, PaddedSequence)


@jax.tree_util.register_pytree_node_class
class Bucket:
  """Some clients of a cohort: rows of a source (see the module docstring).

  Example:
    >>> b = Bucket(np.arange(6.0).reshape(3, 2), True, rows=np.array([2, 0]))
    >>> b.size, np.asarray(b.resolved().source).tolist()
    (2, [[4.0, 5.0], [0.0, 1.0]])
  """

  def __init__(self, source, mapped, rows=None, positions=None, valid=None):
    self.source = source
    # `mapped` may be one bool for every leaf of `source`.
    if isinstance(mapped, bool):
      mapped = jax.tree_util.tree_map(lambda _: mapped, source)
    self.mapped = mapped
    self.rows = rows
    self.positions = positions
    self.valid = valid

  def tree_flatten(self):
    # The static part (the source's structure and which leaves are mapped)
    # is made once per bucket: jit flattens its arguments on every call.
    aux = self.__dict__.get("_aux")
    if aux is None:
      aux = self._aux = (jax.tree_util.tree_structure(self.source),
                         tuple(jax.tree_util.tree_leaves(self.mapped)))
    return (self.source, self.rows, self.positions, self.valid), aux

  @classmethod
  def tree_unflatten(cls, aux, children):
    treedef, flags = aux
    b = cls(children[0], jax.tree_util.tree_unflatten(treedef, list(flags)), *children[1:])
    b._aux = aux
    return b

  def __repr__(self):
    return (f"Bucket(size={self.size}, rows={self.rows is not None}, "
            f"positions={self.positions is not None}, valid={self.valid is not None})")

  @property
  def flags(self) -> list[bool]:
    return jax.tree_util.tree_leaves(self.mapped)

  @property
  def any_mapped(self) -> bool:
    return any(self.flags)

  @property
  def size(self) -> int | None:
    """The bucket's client slots (filler included); None if nothing is mapped."""
    for v in (self.rows, self.positions, self.valid):
      if v is not None:
        return int(jnp.shape(v)[0])
    for leaf, f in zip(jax.tree_util.tree_leaves(self.source), self.flags):
      if f:
        return int(jnp.shape(leaf)[0])
    return None

  def with_source(self, source, mapped) -> "Bucket":
    """The same clients (rows, positions, filler) holding another value."""
    return Bucket(source, mapped, self.rows, self.positions, self.valid)

  def resolved(self) -> "Bucket":
    """This bucket with its rows taken out of the source (a copy): rows None."""
    if self.rows is None:
      return self
    rows = self.rows
    source = jax.tree_util.tree_map(lambda x, f: x[rows] if f else x, self.source, self.mapped)
    return Bucket(source, self.mapped, None, self.positions, self.valid)

  def client(self, i):
    """Client slot `i`'s member (i may be traced). A padded dataset becomes a
    row view of the source, whose elements are read inside the client's
    loop, so no copy of the client's data is made."""
    row = i if self.rows is None else self.rows[i]

    def view(x, m):
      if _is_sequence(x):
        flags = jax.tree_util.tree_leaves(m)
        if x.row is None and flags and all(flags):
          return PaddedSequence(x.data, x.mask, x.element_type, x.full, row=row)
        return jax.tree_util.tree_map(lambda a, f: a[row] if f else a, x, m)
      return x[row] if m else x
    return jax.tree_util.tree_map(view, self.source, self.mapped, is_leaf=_is_sequence)

  def member_shapes(self):
    """The shapes and dtypes of one client's member (ShapeDtypeStructs)."""
    return jax.tree_util.tree_map(
        lambda x, f: jax.ShapeDtypeStruct(jnp.shape(x)[1:] if f else jnp.shape(x), x.dtype),
        self.source, self.mapped)

  def stacked(self, n: int | None = None):
    """The source with a client axis on every leaf (rows taken out; values
    for all clients repeated over the bucket's slots)."""
    b = self.resolved()
    size = b.size if b.size is not None else n
    return jax.tree_util.tree_map(
        lambda x, f: x if f else jnp.broadcast_to(x, (size,) + jnp.shape(x)), b.source, b.mapped)


@jax.tree_util.register_pytree_node_class
class Cohort:
  """A `{T}@CLIENTS` value of the vectorized backend: buckets of clients.

  `num_clients` is the cohort's size (None when no argument is placed at
  CLIENTS and a broadcast value's clients are not counted).

  Example:
    >>> c = Cohort.stacked(np.array([1.0, 2.0, 3.0]))
    >>> c.num_clients, np.asarray(c.in_order()).tolist()
    (3, [1.0, 2.0, 3.0])
  """

  def __init__(self, buckets: list, num_clients: int | None):
    self.buckets = list(buckets)
    self.num_clients = num_clients

  def tree_flatten(self):
    return (self.buckets,), self.num_clients

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(children[0], aux)

  def __repr__(self):
    return f"Cohort({self.num_clients} clients, {self.buckets})"

  @classmethod
  def stacked(cls, value, num_clients: int | None = None) -> "Cohort":
    """Clients' values stacked along a leading axis, in cohort order."""
    if num_clients is None:
      leaves = jax.tree_util.tree_leaves(value)
      num_clients = int(jnp.shape(leaves[0])[0]) if leaves else 0
    return cls([Bucket(value, True)], num_clients)

  @classmethod
  def uniform(cls, value, num_clients: int | None) -> "Cohort":
    """One value held by every client (a broadcast)."""
    return cls([Bucket(value, False)], num_clients)

  @property
  def is_uniform(self) -> bool:
    """True if every client holds the same value (nothing is mapped)."""
    return not any(b.any_mapped for b in self.buckets)

  @property
  def is_plain(self) -> bool:
    """One bucket of all clients in cohort order, without filler or rows."""
    b = self.buckets[0]
    return len(self.buckets) == 1 and b.rows is None and b.positions is None and b.valid is None

  @property
  def element_type(self):
    """The element type of the clients' datasets, if the value is datasets."""
    source = self.buckets[0].source
    return source.element_type if _is_sequence(source) else None

  def client_datasets(self, t: FederatedType, what: str = "") -> list[list]:
    """This prepared cohort of datasets as lists of (NumPy) elements, in
    cohort order, after checking that it holds `t`'s datasets: how another
    backend (the reference one, which runs on lists) takes a cohort prepared
    for this one, e.g. a Population's."""
    check_prepared(t, self, what)
    return members(self)

  def map_buckets(self, fn) -> "Cohort":
    """The cohort with `fn(bucket)` for each bucket."""
    return Cohort([fn(b) for b in self.buckets], self.num_clients)

  def in_order(self):
    """Every client's value stacked along a leading axis, in cohort order
    (buckets put back in place; filler dropped). Leaves are padded to a
    common shape first: buckets of datasets differ in length."""
    n = self.num_clients
    if self.is_plain:
      return self.buckets[0].stacked(n)
    parts = [b.stacked() for b in self.buckets]
    positions = [jnp.arange(b.size) if b.positions is None else b.positions
                 for b in self.buckets]

    def leaf(*xs):
      shape = tuple(max(s) for s in zip(*[jnp.shape(x)[1:] for x in xs]))
      out = jnp.zeros((n,) + shape, xs[0].dtype)
      for x, pos in zip(xs, positions):
        x = jnp.pad(x, [(0, 0)] + [(0, t - h) for t, h in zip(shape, jnp.shape(x)[1:])])
        out = out.at[pos].set(x, mode="drop")
      return out
    return jax.tree_util.tree_map(leaf, *parts)

  def plain(self) -> "Cohort":
    """This cohort as one bucket of all clients in cohort order; values held
    by all clients stay one value."""
    if self.is_plain or self.is_uniform:
      return Cohort([self.buckets[0]], self.num_clients) if self.is_uniform else self
    value = self.in_order()
    return Cohort.stacked(value, self.num_clients)

  def like(self, other: "Cohort") -> "Cohort":
    """This cohort's values in the buckets of `other` (same clients, same
    slots), for putting them side by side with `other`'s."""
    if _same_layout(self, other):
      return self
    if self.is_uniform:
      b = self.buckets[0]
      return Cohort([o.with_source(b.source, b.mapped) for o in other.buckets],
                    other.num_clients)
    plain = self.plain()
    b = plain.buckets[0]
    n = self.num_clients
    buckets = []
    for o in other.buckets:
      if o.positions is None:
        rows = None  # the same clients in the same order
      else:
        rows = jnp.minimum(o.positions, n - 1)  # filler: any real row
      buckets.append(Bucket(b.source, b.mapped, rows, o.positions, o.valid))
    return Cohort(buckets, other.num_clients)


def _same_layout(a: Cohort, b: Cohort) -> bool:
  if len(a.buckets) != len(b.buckets):
    return False
  return all(x.positions is y.positions and (x.positions is not None or x.size == y.size)
             for x, y in zip(a.buckets, b.buckets))


def zip_buckets(buckets: list[Bucket], build) -> Bucket:
  """Buckets of the same clients, their values side by side: `build(values)`
  makes the container. Rows are kept where the mapped parts agree on them,
  and taken out (copied) where they do not."""
  with_rows = [b for b in buckets if b.any_mapped and b.rows is not None]
  rows = with_rows[0].rows if with_rows else None
  if any(b.rows is not rows for b in with_rows) or (
      with_rows and any(b.any_mapped and b.rows is None for b in buckets)):
    buckets = [b.resolved() if b.any_mapped else b for b in buckets]
    rows = None
  ref = buckets[0]
  return Bucket(build([b.source for b in buckets]), build([b.mapped for b in buckets]),
                rows, ref.positions, ref.valid)


def check_prepared(t: FederatedType, value: Cohort, what: str = "") -> None:
  """Raises unless a prepared cohort (padded or gathered) holds `t`'s elements."""
  member = t.member
  if not (t.placement == CLIENTS and isinstance(member, SequenceType)
          and value.element_type == member.element):
    held = value.element_type
    raise FederatedTypeError(
        f"Expected a value of type {t}{' for ' + what if what else ''}, got a prepared cohort "
        f"of {{<{held}>*}}@CLIENTS (e.g. from a Population built for another "
        f"computation). Build the Population with this process or computation.")


class Population:
  """Every client of a federated dataset, padded once, in length buckets.

  The padded populations stay on the device; `gather(ids)` is a round's
  cohort: for each length bucket, the rows of its clients (a few index
  arrays), with filler slots pointing at an empty client at the end.

  Public as `fedjit.core.prepare_population`. Errors name a bad client by
  its id in `client_ids` (or its position).

  Example:
    >>> population = Population(data_type.member, [client_data.create_dataset_for_client(c)
    ...                                            for c in client_data.client_ids])
    >>> cohort = population.gather([3, 17, 42])   # pass to next() as the client data
  """

  def __init__(self, member_type: SequenceType, datasets: list, device_put: bool = True,
               client_ids: "list | None" = None):
    element = member_type.element
    members = [normalize(member_type, d, np, client_what("", i, client_ids))
               for i, d in enumerate(datasets)]
    groups: dict[int, list[int]] = {}
    for i, m in enumerate(members):
      groups.setdefault(pow2(max(len(m), 1)), []).append(i)
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
    # Slots per bucket, per cohort size (see `capacities`): part of the
    # shapes of the compiled round, so kept with the population.
    self._capacities: dict[int, list[int]] = {}

  @property
  def nbytes(self) -> int:
    return sum(l.nbytes for p in self.populations for l in jax.tree_util.tree_leaves(p))

  def capacities(self, cohort: int) -> list[int]:
    """Slots per bucket for cohorts of this size: the expected count plus four
    standard deviations (at most the cohort). Fixed per cohort size, so
    every round has the same shapes and the program compiles once; a round
    that overflows a bucket (rare) raises its capacity for later rounds."""
    if cohort not in self._capacities:
      total = sum(self.sizes)
      caps = []
      for size in self.sizes:
        f = size / total
        expected = cohort * f + 4.0 * np.sqrt(cohort * f * (1.0 - f)) + 2.0
        caps.append(int(min(cohort, np.ceil(expected))))
      self._capacities[cohort] = caps
    return self._capacities[cohort]

  def gather(self, clients: "list[int] | np.ndarray") -> Cohort:
    """The cohort of these client indices (in this order)."""
    clients = np.asarray(clients, np.int64)
    buckets = self.where[clients, 0]
    caps = self.capacities(len(clients))
    out = []
    for b, pop in enumerate(self.populations):
      chosen = np.nonzero(buckets == b)[0]
      if len(chosen) > caps[b]:
        caps[b] = bucket_size(len(chosen))
      count = caps[b]
      rows = np.full(count, self.sizes[b], np.int32)  # the empty filler client
      rows[:len(chosen)] = self.where[clients[chosen], 1]
      pos = np.full(count, len(clients), np.int32)
      pos[:len(chosen)] = chosen
      ok = np.zeros(count, np.float32)
      ok[:len(chosen)] = 1.0
      out.append(Bucket(pop, True, rows, pos, ok))
    return Cohort(out, len(clients))


def prepare_population(member_type: SequenceType, datasets: list,
                       client_ids: "list | None" = None) -> Population:
  """Pads every client's dataset once and keeps it on the device, for rounds
  that sample cohorts of them (`fedjit.simulation.Population` is built on it).

  `population.gather(indices)` is then a round's client data: pass it to a
  computation in place of the list of datasets, on either backend (the
  reference backend gets the datasets back as lists). Errors name a bad
  client by its id in `client_ids` (or its position in `datasets`).

  Example:
    >>> seq = fedjit.SequenceType(fedjit.TensorType(np.float32, [None, 3]))
    >>> population = fedjit.core.prepare_population(seq, datasets, client_ids=["a", "b", "c"])
    >>> result = comp(population.gather([2, 0]))   # clients "c" and "a"
  """
  if not isinstance(member_type, SequenceType):
    raise TypeError(f"prepare_population pads client datasets: expected a SequenceType, got "
                    f"{member_type}.")
  if client_ids is not None and len(client_ids) != len(datasets):
    raise ValueError(f"prepare_population got {len(datasets)} datasets but "
                     f"{len(client_ids)} client ids; give one id per dataset.")
  return Population(member_type, datasets, client_ids=client_ids)


def members(cohort: Cohort) -> list[list]:
  """A cohort of datasets as lists of (NumPy) elements, in cohort order (for
  the reference backend, which runs on lists)."""
  out: list = [None] * cohort.num_clients
  for b in cohort.buckets:
    size = b.size
    rows = np.arange(size) if b.rows is None else np.asarray(b.rows)
    pos = np.arange(size) if b.positions is None else np.asarray(b.positions)
    ok = np.ones(size) if b.valid is None else np.asarray(b.valid)
    for row, at, real in zip(rows, pos, ok):
      if real > 0:
        out[int(at)] = unpad(jax.tree_util.tree_map(lambda x: x[int(row)], b.source))
  return out
