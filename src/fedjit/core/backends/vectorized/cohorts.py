"""Every way the vectorized backend holds a cohort of client data.

Before the program: a `PaddedSequence` (one padded array per leaf, from
`_padding.py`), a `BucketedSequence` (size buckets, from `layouts.py`), and a
`GatheredSequence` (rows of a `Population` kept on the device). Inside the
interpreter: `Clients` (a value with per-leaf "has a client axis" flags),
`BucketedClients`, and `LazyRows` (population rows read where used), with
the helpers that take one client's view of them or scatter buckets back
into cohort order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._errors import FederatedTypeError
from fedjit.core._padding import bucket_size, pad_sequences, pow2, unpad
from fedjit.core._placements import CLIENTS
from fedjit.core._sequence import PaddedSequence
from fedjit.core._types import FederatedType, SequenceType, Type
from fedjit.core._values import normalize

__all__ = ["BucketedClients", "BucketedSequence", "Clients", "GatheredSequence", "LazyRows",
           "Population", "check_prepared"]


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
  `BucketedSequence`): `parts[k]` holds the clients at cohort
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


def resolve(value):
  """`value` with every LazyRows replaced by the rows it stands for."""
  def take(x):
    if isinstance(x, LazyRows):
      return jax.tree_util.tree_map(lambda a: a[x.index], x.population)
    return x
  return jax.tree_util.tree_map(take, value, is_leaf=lambda x: isinstance(x, LazyRows))


def client_view(value, mapped, i):
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


def has_lazy(value) -> bool:
  return any(isinstance(x, LazyRows) for x in jax.tree_util.tree_leaves(
      value, is_leaf=lambda x: isinstance(x, LazyRows)))


def scatter(parts: list, positions: list, n: int):
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


def flags_like(value, flag: bool):
  return jax.tree_util.tree_map(lambda _: flag, value)
