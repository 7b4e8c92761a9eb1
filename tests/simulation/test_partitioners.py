"""Tests for fedjit.simulation.partitioners: structure and statistics."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from fedjit.simulation import partitioners as P

NUM_CLASSES = 10


def _balanced_labels(per_class: int = 600, seed: int = 0) -> np.ndarray:
  """`per_class` examples of each of 10 classes, in random order."""
  return np.random.default_rng(seed).permutation(np.repeat(np.arange(NUM_CLASSES), per_class))


def _check_partition(parts, num_examples: int, covers: bool = True) -> np.ndarray:
  """Asserts sorted int64, disjoint index arrays (covering range(n) if
  `covers`); returns their union."""
  assert isinstance(parts, list)
  for p in parts:
    assert isinstance(p, np.ndarray) and p.dtype == np.int64 and p.ndim == 1
    assert np.all(np.diff(p) > 0), "indices must be sorted and unique"
  union = np.concatenate(parts) if parts else np.zeros(0, np.int64)
  assert len(np.unique(union)) == len(union), "partitions overlap"
  assert union.size == 0 or (union.min() >= 0 and union.max() < num_examples)
  if covers:
    assert len(union) == num_examples
  return np.sort(union)


def _histogram(labels: np.ndarray) -> np.ndarray:
  return np.bincount(labels, minlength=NUM_CLASSES) / len(labels)


def _mean_tv(labels: np.ndarray, parts) -> float:
  """Mean total-variation distance of the clients' label distributions to the
  global one: mean_j ½ Σ_c |p_j(c) − p(c)|."""
  glob = _histogram(labels)
  return float(np.mean([0.5 * np.abs(_histogram(labels[p]) - glob).sum() for p in parts]))


def _same(a, b) -> bool:
  return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# Every seeded partitioner, as a function of the seed.
LABELS = _balanced_labels(100)
SEEDED = {
    "iid": lambda s: P.iid(1000, 10, seed=s),
    "dirichlet": lambda s: P.dirichlet(LABELS, 10, alpha=0.5, seed=s),
    "dirichlet-balanced": lambda s: P.dirichlet(LABELS, 10, alpha=0.5, self_balancing=True,
                                                seed=s),
    "shards": lambda s: P.shards(LABELS, 10, 2, seed=s),
    "pathological": lambda s: P.pathological(LABELS, 10, 3, seed=s),
    "size_skew": lambda s: P.size_skew(1000, 10, "linear", seed=s),
    "power_law": lambda s: P.size_skew(1000, 10, "power_law", seed=s),
}


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_deterministic_for_a_seed_and_different_across_seeds(name):
  fn = SEEDED[name]
  assert _same(fn(7), fn(7))
  assert not _same(fn(7), fn(8))


# --------------------------------------------------------------------- iid


def test_iid_equal_sizes_and_global_label_histograms():
  labels = _balanced_labels(1000)  # 10,000 examples
  parts = P.iid(len(labels) + 3, 10, seed=0)  # 10,003: sizes 1001 x3, 1000 x7
  _check_partition(parts, len(labels) + 3)
  sizes = [len(p) for p in parts]
  assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(labels) + 3
  parts = P.iid(len(labels), 10, seed=0)
  # With 1000 examples per client, sampling noise in TV is about 0.04.
  glob = _histogram(labels)
  for p in parts:
    assert 0.5 * np.abs(_histogram(labels[p]) - glob).sum() < 0.1


def test_iid_one_example_per_partition():
  parts = P.iid(5, 5, seed=1)
  assert sorted(int(p[0]) for p in parts) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("args, match", [
    ((5, 6), "num_partitions=6 is more than the 5 examples"),
    ((5, 0), "num_partitions"),
    ((0, 1), "num_examples"),
    ((5, 2.0), "integer"),
])
def test_iid_rejects_bad_arguments(args, match):
  with pytest.raises(ValueError, match=match):
    P.iid(*args)


# --------------------------------------------------------------- dirichlet


def test_dirichlet_covers_and_small_alpha_is_much_more_skewed():
  labels = _balanced_labels(500)  # 5,000 examples
  skewed = P.dirichlet(labels, 20, alpha=0.1, min_partition_size=10, seed=0)
  near_iid = P.dirichlet(labels, 20, alpha=100.0, min_partition_size=10, seed=0)
  _check_partition(skewed, len(labels))
  _check_partition(near_iid, len(labels))
  tv_skewed, tv_iid = _mean_tv(labels, skewed), _mean_tv(labels, near_iid)
  # Dir(0.1) over 20 clients leaves most classes on a handful of clients
  # (TV near 0.7); Dir(100) gives every client about 5% of each class.
  assert tv_skewed > 0.5
  assert tv_iid < 0.1
  assert tv_skewed > 5 * tv_iid
  # Skewed clients see few classes: on average fewer than 7 of 10 classes hold
  # more than 5% of a client's examples; near-IID clients see all 10.
  def big_classes(parts):
    return np.mean([np.sum(_histogram(labels[p]) > 0.05) for p in parts])
  assert big_classes(skewed) < 7
  assert big_classes(near_iid) == 10


def test_dirichlet_respects_min_partition_size():
  labels = _balanced_labels(100)  # 1,000 examples, 50 per client on average
  unconstrained = []
  for seed in range(8):
    parts = P.dirichlet(labels, 20, alpha=0.3, min_partition_size=15, seed=seed)
    _check_partition(parts, len(labels))
    assert min(len(p) for p in parts) >= 15
    free = P.dirichlet(labels, 20, alpha=0.3, min_partition_size=0, seed=seed)
    unconstrained.append(min(len(p) for p in free))
  # The constraint binds: without it, some draws leave a client below 15.
  assert min(unconstrained) < 15


def test_dirichlet_self_balancing_caps_sizes():
  labels = _balanced_labels(200)  # 2,000 examples, classes of 200
  average = len(labels) / 10
  spread_plain, spread_balanced = [], []
  for seed in range(5):
    plain = P.dirichlet(labels, 10, alpha=0.3, min_partition_size=0, seed=seed)
    balanced = P.dirichlet(labels, 10, alpha=0.3, min_partition_size=0, self_balancing=True,
                           seed=seed)
    _check_partition(balanced, len(labels))
    sizes = np.array([len(p) for p in balanced])
    # A partition stops receiving once above average, so it can exceed the
    # average by at most one class's examples.
    assert sizes.max() < average + 200
    spread_plain.append(np.std([len(p) for p in plain]))
    spread_balanced.append(np.std(sizes))
  assert np.mean(spread_balanced) < np.mean(spread_plain)


def test_dirichlet_per_partition_alpha_and_string_labels():
  labels = np.array(["cat", "dog", "eel"] * 100)
  parts = P.dirichlet(labels, 3, alpha=[1.0, 1.0, 1.0], seed=0)
  _check_partition(parts, len(labels))


def test_dirichlet_gives_up_with_a_helpful_error():
  labels = _balanced_labels(20)  # 200 examples
  with pytest.raises(ValueError, match=r"alpha.*min_partition_size|min_partition_size.*alpha"):
    P.dirichlet(labels, 40, alpha=0.01, min_partition_size=5, seed=0, max_tries=3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.0), "alpha` must be > 0"),
    (dict(alpha=-1.0), "alpha` must be > 0"),
    (dict(alpha=[1.0, 2.0]), "one per partition"),
    (dict(alpha=1.0, min_partition_size=200), "needs 2000 examples"),
    (dict(alpha=1.0, num_partitions=1001), "more than the 1000 examples"),
])
def test_dirichlet_rejects_bad_arguments(kwargs, match):
  kwargs = {"num_partitions": 10, **kwargs}
  with pytest.raises(ValueError, match=match):
    P.dirichlet(_balanced_labels(100), **kwargs)


# ------------------------------------------------------------------ shards


def test_shards_mcmahan_setup():
  labels = _balanced_labels(600)  # 6,000 examples; 100 clients x 2 shards of 30
  parts = P.shards(labels, 100, num_shards_per_partition=2, seed=0)
  _check_partition(parts, len(labels))
  assert {len(p) for p in parts} == {60}
  for p in parts:
    counts = np.bincount(labels[p], minlength=NUM_CLASSES)
    assert np.count_nonzero(counts) <= 2
    assert np.all(counts % 30 == 0), "each shard holds a single label"
  # With 200 random shards out of 20 per class, most clients get two labels.
  assert np.mean([len(np.unique(labels[p])) == 2 for p in parts]) > 0.8


def test_shards_drops_what_does_not_fit():
  labels = _balanced_labels(600)
  extra = np.concatenate([labels, np.arange(10)])  # 6,010: default shard size 30
  parts = P.shards(extra, 100, 2, seed=0)
  union = _check_partition(parts, len(extra), covers=False)
  assert len(union) == 6000 and {len(p) for p in parts} == {60}
  parts = P.shards(labels, 50, num_shards_per_partition=3, shard_size=20, seed=1)
  union = _check_partition(parts, len(labels), covers=False)
  assert len(union) == 50 * 3 * 20 and {len(p) for p in parts} == {60}
  for p in parts:
    assert np.count_nonzero(np.bincount(labels[p], minlength=NUM_CLASSES)) <= 3
  # The unused shards are random ones, not the largest labels.
  assert len(np.unique(labels[union])) == NUM_CLASSES


def test_shards_rejects_too_large_shards():
  with pytest.raises(ValueError, match="shard_size=40 need 8000 examples, but there are 6000"):
    P.shards(_balanced_labels(600), 100, 2, shard_size=40)
  with pytest.raises(ValueError, match="num_shards_per_partition"):
    P.shards(_balanced_labels(600), 10, 0)


# ------------------------------------------------------------ pathological


@pytest.mark.parametrize("mode", ["random", "deterministic", "first-deterministic"])
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.filterwarnings("ignore:pathological. labels")
def test_pathological_exactly_k_classes_split_evenly(mode, k):
  labels = _balanced_labels(200)
  parts = P.pathological(labels, 20, num_classes_per_partition=k, class_assignment_mode=mode,
                         seed=0)
  union = _check_partition(parts, len(labels), covers=False)
  holders = defaultdict(list)
  for j, p in enumerate(parts):
    present = np.unique(labels[p])
    assert len(present) == k
    for c in present:
      holders[int(c)].append(int(np.sum(labels[p] == c)))
    if mode == "deterministic":
      assert sorted(present.tolist()) == sorted((j + i) % NUM_CLASSES for i in range(k))
    if mode == "first-deterministic":
      assert j % NUM_CLASSES in present
  for c, counts in holders.items():
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == 200  # every example of a used class is assigned
  # 20 partitions >= 10 classes: the deterministic modes use every class.
  if mode != "random":
    assert len(union) == len(labels)


def test_pathological_warns_about_unused_classes():
  labels = _balanced_labels(50)
  with pytest.warns(UserWarning, match=r"labels \[3, 4, 5, 6, 7, 8, 9\]"):
    parts = P.pathological(labels, 2, 2, class_assignment_mode="deterministic")
  union = _check_partition(parts, len(labels), covers=False)
  assert np.array_equal(union, np.flatnonzero(labels < 3))


def test_pathological_rejects_bad_arguments():
  labels = _balanced_labels(50)
  with pytest.raises(ValueError, match="num_classes_per_partition=11 is more than the 10"):
    P.pathological(labels, 5, 11)
  with pytest.raises(ValueError, match="class_assignment_mode must be one of"):
    P.pathological(labels, 5, 2, class_assignment_mode="round-robin")
  tiny = np.array([0, 0, 0, 1, 1, 1, 2])  # label 2 has one example
  with pytest.raises(ValueError, match="Label 2 has 1 examples but 3 partitions"):
    P.pathological(tiny, 3, 3, class_assignment_mode="deterministic")


# -------------------------------------------------------------- natural_id


@pytest.mark.parametrize("ids", [
    np.random.default_rng(0).choice(["w7", "w1", "w3", "w10"], size=500),
    np.random.default_rng(1).integers(100, 130, size=500),
])
def test_natural_id_matches_a_groupby(ids):
  unique, parts = P.natural_id(ids)
  _check_partition(parts, len(ids))
  groups = defaultdict(list)
  for i, v in enumerate(ids.tolist()):
    groups[v].append(i)
  assert unique == sorted(groups)
  for u, p in zip(unique, parts):
    assert p.tolist() == groups[u]


def test_natural_id_rejects_bad_ids():
  with pytest.raises(ValueError, match="1-D"):
    P.natural_id(np.zeros((3, 2)))
  with pytest.raises(ValueError, match="empty"):
    P.natural_id([])
  with pytest.raises(ValueError, match="sorted"):
    P.natural_id(np.array([1, "a", 2.5], dtype=object))


# --------------------------------------------------------------- size_skew


def test_size_skew_linear_and_square_ratios():
  parts = P.size_skew(5500, 10, "linear", seed=0)  # 100 * (i + 1)
  _check_partition(parts, 5500)
  assert [len(p) for p in parts] == [100 * (i + 1) for i in range(10)]
  parts = P.size_skew(3850, 10, "square", seed=0)  # 10 * (i + 1)^2
  _check_partition(parts, 3850)
  assert [len(p) for p in parts] == [10 * (i + 1) ** 2 for i in range(10)]


@pytest.mark.parametrize("kind, weight", [
    ("linear", lambda i: i + 1.0),
    ("square", lambda i: (i + 1.0) ** 2),
    ("exponential", lambda i: np.exp(i - 11.0)),
])
def test_size_skew_sizes_within_one_of_their_quota(kind, weight):
  n = 100_003
  parts = P.size_skew(n, 12, kind, seed=3)
  _check_partition(parts, n)
  sizes = np.array([len(p) for p in parts])
  w = weight(np.arange(12))
  assert np.all(np.abs(sizes - n * w / w.sum()) < 1.0)
  assert np.all(np.diff(sizes) >= 0)


def test_size_skew_exponential_ratio_and_minimum_one():
  parts = P.size_skew(10**6, 8, "exponential", seed=0)
  sizes = np.array([len(p) for p in parts], dtype=float)
  np.testing.assert_allclose(sizes[1:] / sizes[:-1], np.e, rtol=0.01)
  # exp(i) over 40 clients leaves most quotas below one example.
  parts = P.size_skew(1000, 40, "exponential", seed=0)
  _check_partition(parts, 1000)
  sizes = np.array([len(p) for p in parts])
  assert sizes.min() == 1 and sizes.sum() == 1000 and np.all(np.diff(sizes) >= 0)


def test_size_skew_edge_case_one_example_each():
  for kind in ["linear", "square", "exponential", "power_law"]:
    parts = P.size_skew(7, 7, kind, seed=0)
    assert [len(p) for p in parts] == [1] * 7


@pytest.mark.parametrize("exponent", [1.0, 1.5, 3.0])
def test_size_skew_power_law_tail_exponent(exponent):
  n, num_partitions, k = 10**6, 2000, 300
  for seed in range(3):
    parts = P.size_skew(n, num_partitions, "power_law", seed=seed,
                        power_law_exponent=exponent)
    sizes = np.array([len(p) for p in parts], dtype=float)
    assert sizes.sum() == n and sizes.min() >= 1 and np.all(np.diff(sizes) >= 0)
    # Hill estimator of the Pareto tail index from the k largest sizes,
    # which are large enough that rounding does not matter:
    # â = k / Σ_{i<k} log(X_(i) / X_(k)). Its standard error is a / sqrt(k).
    top = sizes[::-1][:k + 1]
    estimate = k / np.sum(np.log(top[:k] / top[k]))
    assert abs(estimate - exponent) < 4 * exponent / np.sqrt(k)


def test_size_skew_power_law_heavier_tail_for_smaller_exponent():
  def top_share(a):
    sizes = np.array([len(p) for p in P.size_skew(10**5, 500, "power_law", seed=0,
                                                  power_law_exponent=a)])
    return np.sort(sizes)[-50:].sum() / sizes.sum()  # share of the largest 10%
  assert top_share(1.0) > top_share(2.0) > top_share(5.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="cubic"), "kind must be one of"),
    (dict(num_examples=5), "num_partitions=10 is more than the 5 examples"),
    (dict(kind="power_law", power_law_exponent=0.0), "power_law_exponent must be a number > 0"),
])
def test_size_skew_rejects_bad_arguments(kwargs, match):
  kwargs = {"num_examples": 100, "num_partitions": 10, **kwargs}
  with pytest.raises(ValueError, match=match):
    P.size_skew(**kwargs)


# ------------------------------------------------------------- ClientData


def test_partition_builds_client_data():
  from fedjit.simulation import ClientData
  labels = _balanced_labels(20)
  x = np.arange(len(labels), dtype=np.float32)[:, None]
  parts = P.dirichlet(labels, 5, alpha=1.0, seed=0)
  data = ClientData.from_partition({"x": x, "y": labels}, parts)
  assert data.client_ids == ["0", "1", "2", "3", "4"]
  ds = data.create_dataset_for_client("2")
  assert len(ds) == len(parts[2])
  batch = next(iter(ds.batch(len(ds))))
  np.testing.assert_array_equal(batch["y"], labels[parts[2]])
  np.testing.assert_array_equal(batch["x"][:, 0], parts[2])
