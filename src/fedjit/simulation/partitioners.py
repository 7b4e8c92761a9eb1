"""Partitioners: split a centralized dataset into simulated clients.

Each partitioner is a pure function of NumPy arrays that returns one index
array per client (a *partition*): sorted `int64` indices into the centralized
dataset, disjoint across clients and, unless a function documents otherwise,
together covering every example. Random partitioners are deterministic for a
given `seed` (`np.random.default_rng(seed)`); `seed=None` draws fresh entropy.

The functions and their parameters follow Flower Datasets' partitioners
(`IidPartitioner`, `DirichletPartitioner`, `ShardPartitioner`,
`PathologicalPartitioner`, `NaturalIdPartitioner`, `LinearPartitioner`, ...),
as functions instead of stateful objects. Flower's `partition_by` column name
becomes the label (or id) array itself, and there is no `shuffle`: partitions
come back sorted, so shuffle a client's dataset when you batch it.

Example:
  >>> from fedjit.simulation import partitioners, ClientData
  >>> x, labels = np.zeros((600, 4)), np.repeat(np.arange(10), 60)
  >>> parts = partitioners.dirichlet(labels, num_partitions=5, alpha=0.5, seed=0)
  >>> data = ClientData.from_partition({"x": x, "y": labels}, parts)
  >>> sum(len(data.create_dataset_for_client(c)) for c in data.client_ids)
  600
"""

from __future__ import annotations

import math
import operator
import warnings
from typing import Any, Literal, Sequence

import numpy as np

__all__ = [
    "dirichlet",
    "iid",
    "natural_id",
    "pathological",
    "shards",
    "size_skew",
]

Partition = list[np.ndarray]


# ----------------------------------------------------------------- helpers


def _as_int(value: Any, name: str, minimum: int) -> int:
  if isinstance(value, bool):
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
  try:
    value = operator.index(value)
  except TypeError:
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r} "
                     f"({type(value).__name__}).") from None
  if value < minimum:
    raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}.")
  return value


def _as_column(values: Any, name: str) -> np.ndarray:
  values = np.asarray(values)
  if values.ndim != 1:
    raise ValueError(f"`{name}` must be a 1-D array with one entry per example, got an "
                     f"array of shape {values.shape}. Pass e.g. `{name}=y.ravel()`.")
  if values.shape[0] == 0:
    raise ValueError(f"`{name}` is empty: there are no examples to partition.")
  return values


def _check_partitions(num_partitions: Any, num_examples: int) -> int:
  num_partitions = _as_int(num_partitions, "num_partitions", 1)
  if num_partitions > num_examples:
    raise ValueError(f"num_partitions={num_partitions} is more than the {num_examples} "
                     f"examples: every partition needs at least one example. Use at most "
                     f"{num_examples} partitions.")
  return num_partitions


def _sorted_parts(parts: Sequence[Any]) -> Partition:
  return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _split_by_sizes(order: np.ndarray, sizes: np.ndarray) -> Partition:
  return _sorted_parts(np.split(order, np.cumsum(sizes)[:-1]))


def _apportion(weights: np.ndarray, total: int) -> np.ndarray:
  """Integer sizes summing to `total`, each within one of `total * w_i / sum(w)`
  (largest-remainder rounding), then raised to at least 1 by taking examples
  from the largest sizes. Non-decreasing weights give non-decreasing sizes."""
  quotas = total * (weights / weights.sum())
  sizes = np.floor(quotas).astype(np.int64)
  remainders = quotas - sizes
  short = total - int(sizes.sum())
  # Largest remainders first; on ties prefer the later (larger-weight) client.
  order = np.lexsort((-np.arange(len(weights)), -remainders))
  sizes[order[:short]] += 1
  deficit = int(np.sum(sizes == 0))
  sizes[sizes == 0] = 1
  for _ in range(deficit):
    sizes[int(np.argmax(sizes))] -= 1  # first index of the maximum: stays monotone
  return sizes


# ------------------------------------------------------------- partitioners


def iid(num_examples: int, num_partitions: int, seed: int | None = None) -> Partition:
  """Splits `num_examples` examples uniformly at random into equal partitions.

  Flower's `IidPartitioner`: a random permutation cut into `num_partitions`
  contiguous pieces, so sizes differ by at most one.

  Args:
    num_examples: Number of examples in the centralized dataset.
    num_partitions: Number of partitions (clients), at most `num_examples`.
    seed: Seed for `np.random.default_rng`.

  Returns:
    `num_partitions` sorted int64 index arrays that partition
    `range(num_examples)`.

  Raises:
    ValueError: If `num_partitions` is not in `[1, num_examples]`.

  Example:
    >>> [len(p) for p in iid(10, num_partitions=3, seed=0)]
    [4, 3, 3]
  """
  num_examples = _as_int(num_examples, "num_examples", 1)
  num_partitions = _check_partitions(num_partitions, num_examples)
  order = np.random.default_rng(seed).permutation(num_examples)
  return _sorted_parts(np.array_split(order, num_partitions))


def dirichlet(labels: Any, num_partitions: int, alpha: float | Sequence[float],
              min_partition_size: int = 10, self_balancing: bool = False,
              seed: int | None = None, max_tries: int = 10) -> Partition:
  """Label-skewed partitions: each class is split across clients by Dirichlet
  proportions (Yurochkin et al. 2019; Flower's `DirichletPartitioner`).

  For every class c, with n_c examples in random order, draws
  p_c ~ Dir(alpha) over the partitions and gives partition j the examples
  between positions floor(n_c · Σ_{i<j} p_c,i) and floor(n_c · Σ_{i≤j} p_c,i).
  Small `alpha` (0.1) gives each client few classes; large `alpha` (100) gives
  nearly the global label distribution. If some partition ends with fewer than
  `min_partition_size` examples, all proportions are drawn again, up to
  `max_tries` times.

  With `self_balancing`, a partition that already holds more than the average
  `len(labels) / num_partitions` examples receives nothing from later classes
  (its proportion is set to 0 and the rest renormalized), which keeps sizes
  closer to equal.

  Args:
    labels: 1-D array, the class of every example (any sortable values).
    num_partitions: Number of partitions (clients).
    alpha: Concentration, > 0: one number (symmetric Dirichlet) or one per
      partition.
    min_partition_size: Least number of examples every partition must get.
    self_balancing: Whether to stop filling partitions above the average size.
    seed: Seed for `np.random.default_rng`.
    max_tries: How many times to draw proportions before giving up.

  Returns:
    `num_partitions` sorted int64 index arrays that partition
    `range(len(labels))`.

  Raises:
    ValueError: For `alpha <= 0`, an `alpha` of the wrong length, more
      partitions than examples, a `min_partition_size` that cannot be met, or
      no draw in `max_tries` meeting it.

  Example:
    >>> labels = np.repeat(np.arange(10), 100)
    >>> parts = dirichlet(labels, num_partitions=10, alpha=0.5, seed=0)
    >>> sum(len(p) for p in parts), min(len(p) for p in parts) >= 10
    (1000, True)
  """
  labels = _as_column(labels, "labels")
  n = labels.shape[0]
  num_partitions = _check_partitions(num_partitions, n)
  min_partition_size = _as_int(min_partition_size, "min_partition_size", 0)
  max_tries = _as_int(max_tries, "max_tries", 1)
  alpha_vec = np.asarray(alpha, dtype=np.float64)
  if alpha_vec.ndim == 0:
    alpha_vec = np.full(num_partitions, float(alpha_vec))
  elif alpha_vec.shape != (num_partitions,):
    raise ValueError(f"`alpha` must be one number or one per partition "
                     f"({num_partitions} values), got {alpha_vec.size} values.")
  if not np.all(np.isfinite(alpha_vec) & (alpha_vec > 0)):
    raise ValueError(f"`alpha` must be > 0 (small values, e.g. 0.1, give very skewed "
                     f"label distributions; large ones, e.g. 100, nearly IID), got {alpha!r}.")
  if min_partition_size * num_partitions > n:
    raise ValueError(f"min_partition_size={min_partition_size} for {num_partitions} "
                     f"partitions needs {min_partition_size * num_partitions} examples, but "
                     f"there are {n}. Lower min_partition_size or num_partitions.")

  rng = np.random.default_rng(seed)
  _, y = np.unique(labels, return_inverse=True)
  by_class = [np.flatnonzero(y == c) for c in range(int(y.max()) + 1)]
  average = n / num_partitions
  smallest = 0
  for _ in range(max_tries):
    parts: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
    sizes = np.zeros(num_partitions, dtype=np.int64)
    for members in by_class:
      members = rng.permutation(members)
      p = rng.dirichlet(alpha_vec)
      if self_balancing:
        open_ = sizes < average
        if p[open_].sum() > 0:
          p = np.where(open_, p, 0.0) / p[open_].sum()
      cuts = np.minimum((np.cumsum(p)[:-1] * len(members)).astype(np.int64), len(members))
      for j, chunk in enumerate(np.split(members, cuts)):
        parts[j].append(chunk)
        sizes[j] += len(chunk)
    smallest = int(sizes.min())
    if smallest >= min_partition_size:
      return _sorted_parts([np.concatenate(p) for p in parts])
  raise ValueError(
      f"dirichlet could not give each of the {num_partitions} partitions at least "
      f"min_partition_size={min_partition_size} examples in max_tries={max_tries} draws "
      f"with alpha={alpha!r} (the last draw's smallest partition had {smallest}). Increase "
      f"alpha (less skew), lower min_partition_size, use fewer partitions, or raise "
      f"max_tries.")


def shards(labels: Any, num_partitions: int, num_shards_per_partition: int = 2,
           shard_size: int | None = None, seed: int | None = None) -> Partition:
  """The pathological non-IID split of McMahan et al. 2017 (Flower's
  `ShardPartitioner`): sort by label, cut into shards, deal shards to clients.

  The examples are sorted by label (in random order within a label) and cut
  into consecutive shards of `shard_size` examples; every partition gets
  `num_shards_per_partition` shards chosen at random without replacement.
  `shard_size` defaults to `len(labels) // (num_partitions *
  num_shards_per_partition)`. With 100 clients, 2 shards each and 60,000 MNIST
  examples this is the paper's setup: shards of 300, most clients seeing two
  digits. When `shard_size` divides every class's size, every shard holds a
  single label, so a client has at most `num_shards_per_partition` labels.

  Not every example is used: only `num_partitions * num_shards_per_partition`
  shards are dealt, so the `len(labels) - num_partitions *
  num_shards_per_partition * shard_size` remaining examples (the incomplete
  last shard, and whole random shards when more complete shards exist than
  are needed) belong to no partition. All partitions have the same size.

  Args:
    labels: 1-D array, the class of every example (any sortable values).
    num_partitions: Number of partitions (clients).
    num_shards_per_partition: Shards each partition gets.
    shard_size: Examples per shard; `None` for the largest size that fits.
    seed: Seed for `np.random.default_rng`.

  Returns:
    `num_partitions` sorted int64 index arrays, each of
    `num_shards_per_partition * shard_size` examples, disjoint.

  Raises:
    ValueError: If the shards do not fit into the data.

  Example:
    >>> labels = np.repeat(np.arange(10), 60)
    >>> parts = shards(labels, num_partitions=10, num_shards_per_partition=2, seed=0)
    >>> [len(np.unique(labels[p])) <= 2 for p in parts] == [True] * 10
    True
  """
  labels = _as_column(labels, "labels")
  n = labels.shape[0]
  num_partitions = _check_partitions(num_partitions, n)
  k = _as_int(num_shards_per_partition, "num_shards_per_partition", 1)
  needed = num_partitions * k
  if shard_size is None:
    if needed > n:
      raise ValueError(f"{num_partitions} partitions x {k} shards need at least {needed} "
                       f"examples (one per shard), but there are {n}. Lower "
                       f"num_partitions or num_shards_per_partition.")
    shard_size = n // needed
  shard_size = _as_int(shard_size, "shard_size", 1)
  if needed * shard_size > n:
    raise ValueError(f"{num_partitions} partitions x {k} shards x shard_size={shard_size} "
                     f"need {needed * shard_size} examples, but there are {n}. Lower "
                     f"shard_size (at most {n // needed}), num_shards_per_partition or "
                     f"num_partitions.")
  rng = np.random.default_rng(seed)
  shuffled = rng.permutation(n)
  by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
  num_complete = n // shard_size
  chosen = rng.permutation(num_complete)[:needed].reshape(num_partitions, k)
  blocks = by_label[:num_complete * shard_size].reshape(num_complete, shard_size)
  return _sorted_parts([blocks[row].ravel() for row in chosen])


def pathological(labels: Any, num_partitions: int, num_classes_per_partition: int,
                 class_assignment_mode: Literal["random", "deterministic",
                                                "first-deterministic"] = "random",
                 seed: int | None = None) -> Partition:
  """Partitions that each hold exactly `num_classes_per_partition` classes
  (Li et al. 2022, "Federated Learning on Non-IID Data Silos"; Flower's
  `PathologicalPartitioner`).

  First each partition is given k = `num_classes_per_partition` classes,
  indexing the sorted distinct labels as 0..C-1:

  * `"random"`: k distinct classes at random.
  * `"deterministic"`: partition j gets classes (j + i) mod C, i = 0..k-1.
  * `"first-deterministic"`: class j mod C, plus k-1 other random classes
    (the paper's setup; every class is used when num_partitions >= C).

  Then the examples of each class are shuffled and split as evenly as
  possible (sizes differ by at most one) among the partitions holding it.
  Examples of a class that no partition holds are left out (a warning names
  those classes).

  Args:
    labels: 1-D array, the class of every example (any sortable values).
    num_partitions: Number of partitions (clients).
    num_classes_per_partition: Exact number of classes of every partition.
    class_assignment_mode: `"random"`, `"deterministic"` or
      `"first-deterministic"`.
    seed: Seed for `np.random.default_rng`.

  Returns:
    `num_partitions` sorted int64 index arrays, disjoint, covering every
    example of the classes in use.

  Raises:
    ValueError: If `num_classes_per_partition` is not in `[1, C]`, the mode is
      unknown, or a class has fewer examples than partitions holding it.

  Example:
    >>> labels = np.repeat(np.arange(10), 50)
    >>> parts = pathological(labels, 10, num_classes_per_partition=2,
    ...                      class_assignment_mode="deterministic")
    >>> np.unique(labels[parts[3]]).tolist()
    [3, 4]
  """
  labels = _as_column(labels, "labels")
  n = labels.shape[0]
  num_partitions = _check_partitions(num_partitions, n)
  classes, y = np.unique(labels, return_inverse=True)
  num_classes = len(classes)
  k = _as_int(num_classes_per_partition, "num_classes_per_partition", 1)
  if k > num_classes:
    raise ValueError(f"num_classes_per_partition={k} is more than the {num_classes} "
                     f"distinct labels in `labels`. Use at most {num_classes}.")
  modes = ("random", "deterministic", "first-deterministic")
  if class_assignment_mode not in modes:
    raise ValueError(f"class_assignment_mode must be one of {modes}, got "
                     f"{class_assignment_mode!r}.")
  rng = np.random.default_rng(seed)
  assigned = []
  for j in range(num_partitions):
    if class_assignment_mode == "deterministic":
      chosen = (j + np.arange(k)) % num_classes
    elif class_assignment_mode == "random":
      chosen = rng.choice(num_classes, size=k, replace=False)
    else:
      first = j % num_classes
      others = np.delete(np.arange(num_classes), first)
      chosen = np.concatenate([[first], rng.choice(others, size=k - 1, replace=False)])
    assigned.append(chosen)
  holders: list[list[int]] = [[] for _ in range(num_classes)]
  for j, chosen in enumerate(assigned):
    for c in chosen:
      holders[int(c)].append(j)

  counts = np.bincount(y, minlength=num_classes)
  for c in range(num_classes):
    if len(holders[c]) > counts[c]:
      raise ValueError(
          f"Label {classes[c].item()!r} has {counts[c]} examples but {len(holders[c])} partitions "
          f"hold it, so some would get none of it. Lower num_partitions or "
          f"num_classes_per_partition, or use class_assignment_mode='deterministic' to "
          f"spread the classes evenly.")
  unused = [classes[c].item() for c in range(num_classes) if not holders[c]]
  if unused:
    warnings.warn(
        f"pathological: labels {unused} are held by no partition, so their examples are "
        f"left out. Use more partitions or class_assignment_mode='first-deterministic' "
        f"(which uses every class when num_partitions >= the number of classes).",
        UserWarning, stacklevel=2)

  parts: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
  for c in range(num_classes):
    if not holders[c]:
      continue
    members = rng.permutation(np.flatnonzero(y == c))
    for j, chunk in zip(holders[c], np.array_split(members, len(holders[c]))):
      parts[j].append(chunk)
  return _sorted_parts([np.concatenate(p) for p in parts])


def natural_id(ids: Any) -> tuple[list[Any], Partition]:
  """One partition per distinct value of an id column, such as a writer or a
  user id (Flower's `NaturalIdPartitioner`).

  Args:
    ids: 1-D array, the natural id of every example (any sortable values).

  Returns:
    `(unique_ids, partitions)`: the distinct ids in **sorted** order (as
    Python values, as `np.unique` orders them) and, for each, the sorted
    int64 indices of its examples. The partitions cover every example.

  Raises:
    ValueError: If `ids` is not a non-empty 1-D array of comparable values.

  Example:
    >>> natural_id(np.array(["bob", "ann", "bob"]))
    (['ann', 'bob'], [array([1]), array([0, 2])])
  """
  ids = _as_column(ids, "ids")
  try:
    unique, inverse = np.unique(ids, return_inverse=True)
  except TypeError as e:
    raise ValueError(f"natural_id needs ids that can be sorted (all numbers or all "
                     f"strings), got values of types "
                     f"{sorted({type(v).__name__ for v in ids.tolist()})}: {e}") from None
  order = np.argsort(inverse, kind="stable")
  counts = np.bincount(inverse, minlength=len(unique))
  return unique.tolist(), _split_by_sizes(order, counts)


def size_skew(num_examples: int, num_partitions: int,
              kind: Literal["linear", "square", "exponential", "power_law"] = "linear",
              seed: int | None = None, power_law_exponent: float = 1.5) -> Partition:
  """IID partitions of unequal sizes (quantity skew), growing with the client
  index (Flower's `LinearPartitioner`, `SquarePartitioner`,
  `ExponentialPartitioner`; a power law as in LEAF).

  Client i (0-based) gets a share proportional to a weight w_i:

  * `"linear"`: w_i = i + 1
  * `"square"`: w_i = (i + 1)²
  * `"exponential"`: w_i = eⁱ
  * `"power_law"`: w_i are `num_partitions` random draws, sorted ascending,
    from a Pareto law P(W > w) = w^(-a) for w >= 1, a = `power_law_exponent`
    (smaller a, heavier tail: a few clients hold most of the data).

  Sizes are num_examples · w_i / Σ w rounded to integers by largest
  remainders (each within one example of that quota), then raised to at least
  one example, taken from the largest clients. Sizes sum to `num_examples` and
  never decrease with i. Which examples go to which client is a uniformly
  random permutation.

  Args:
    num_examples: Number of examples in the centralized dataset.
    num_partitions: Number of partitions (clients), at most `num_examples`.
    kind: `"linear"`, `"square"`, `"exponential"` or `"power_law"`.
    seed: Seed for `np.random.default_rng` (the examples' assignment, and the
      sizes for `"power_law"`).
    power_law_exponent: The tail exponent a > 0 of `"power_law"`.

  Returns:
    `num_partitions` sorted int64 index arrays that partition
    `range(num_examples)`.

  Raises:
    ValueError: For an unknown `kind`, more partitions than examples, or
      `power_law_exponent <= 0`.

  Example:
    >>> [len(p) for p in size_skew(60, num_partitions=3, kind="linear", seed=0)]
    [10, 20, 30]
  """
  num_examples = _as_int(num_examples, "num_examples", 1)
  num_partitions = _check_partitions(num_partitions, num_examples)
  kinds = ("linear", "square", "exponential", "power_law")
  if kind not in kinds:
    raise ValueError(f"kind must be one of {kinds}, got {kind!r}.")
  if not (isinstance(power_law_exponent, (int, float, np.number))
          and math.isfinite(power_law_exponent) and power_law_exponent > 0):
    raise ValueError(f"power_law_exponent must be a number > 0, got {power_law_exponent!r}.")
  rng = np.random.default_rng(seed)
  i = np.arange(num_partitions, dtype=np.float64)
  if kind == "linear":
    weights = i + 1
  elif kind == "square":
    weights = (i + 1) ** 2
  elif kind == "exponential":
    weights = np.exp(i - i[-1])  # e^i scaled by e^-(N-1) so it never overflows
  else:
    weights = np.sort(rng.pareto(power_law_exponent, num_partitions) + 1.0)
  sizes = _apportion(weights, num_examples)
  return _split_by_sizes(rng.permutation(num_examples), sizes)
