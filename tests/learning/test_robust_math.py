"""The robust aggregation rules of `_robust_math` against straightforward
NumPy references (loops, np.sort, np.median, explicit distances), under
jit and with a symbolic number of clients (jax.export), their argument
checks, their documented NaN handling, and their robustness to Byzantine
rows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export as jax_export

from fedjit.learning.aggregators import _robust_math as rm


def _data(n, d, seed=0, outliers=0):
  """n rows of N(mu, 1) in float32, the last `outliers` rows far away."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)) + rng.normal(size=d)
  if outliers:
    x[-outliers:] = rng.normal(size=(outliers, d)) * 30 + 40
  return x.astype(np.float32)


# ---------------------------------------------------- NumPy references


def ref_trimmed_mean(x, b):
  s = np.sort(x.astype(np.float64), axis=0)
  return s[b:len(x) - b].mean(axis=0)


def _dist2(a, b):
  a, b = a.astype(np.float64), b.astype(np.float64)
  return float(np.sum((a - b) ** 2))


def ref_krum(x, f, m=1):
  n = len(x)
  scores = []
  for i in range(n):
    others = sorted(_dist2(x[i], x[j]) for j in range(n) if j != i)
    scores.append(sum(others[:n - f - 2]))
  selected = np.argsort(scores, kind="stable")[:m]
  return x[selected].astype(np.float64).mean(axis=0), selected


def ref_bulyan(x, f):
  n, d = x.shape
  theta, remaining, selected = n - 2 * f, list(range(n)), []
  while len(selected) < theta:
    k = max(len(remaining) - f - 2, 1)
    scores = [sum(sorted(_dist2(x[i], x[j]) for j in remaining if j != i)[:k])
              for i in remaining]
    pick = remaining[int(np.argmin(scores))]
    selected.append(pick)
    remaining.remove(pick)
  s = x[sorted(selected)].astype(np.float64)   # ties to the lower row index
  beta = theta - 2 * f
  out = np.empty(d)
  for j in range(d):
    col = s[:, j]
    nearest = np.argsort(np.abs(col - np.median(col)), kind="stable")[:beta]
    out[j] = col[nearest].mean()
  return out, selected


def ref_weiszfeld(x, iterations, nu=1e-6):
  x = x.astype(np.float64)
  v = x.mean(axis=0)
  for _ in range(iterations):
    w = np.array([1 / max(nu, np.linalg.norm(xi - v)) for xi in x])
    v = (w[:, None] * x).sum(axis=0) / w.sum()
  return v


def ref_centered_clipping(x, center, radius, iterations):
  x = x.astype(np.float64)
  v = np.asarray(center, np.float64)
  for _ in range(iterations):
    steps = []
    for xi in x:
      z = xi - v
      norm = np.linalg.norm(z)
      steps.append(z if norm <= radius else z * radius / norm)
    v = v + np.mean(steps, axis=0)
  return v


def ref_nnm(x, f):
  n = len(x)
  out = []
  for i in range(n):
    order = sorted(range(n), key=lambda j: (j != i, _dist2(x[i], x[j]), j))[:n - f]
    out.append(x[order].astype(np.float64).mean(axis=0))
  return np.array(out)


def ref_bucketing(x, s, key):
  n = len(x)
  perm = np.argsort(np.asarray(jax.random.bits(key, (n,), jnp.uint32)), kind="stable")
  return np.array([x[perm[j:j + s]].astype(np.float64).mean(axis=0)
                   for j in range(0, n, s)])


# ---------------------------------------------------- against NumPy


@pytest.mark.parametrize("n", [1, 2, 5, 10, 13])
@pytest.mark.parametrize("chunk", [None, 3, 64])
def test_coordinate_median_is_numpys(n, chunk):
  x = _data(n, 10, seed=n, outliers=n // 4)
  np.testing.assert_allclose(rm.coordinate_median(x, chunk=chunk), np.median(x, axis=0),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n,b", [(1, 0), (3, 1), (8, 2), (11, 5), (12, 0)])
@pytest.mark.parametrize("chunk", [None, 4])
def test_trimmed_mean_is_numpys(n, b, chunk):
  x = _data(n, 9, seed=n + b, outliers=b)
  np.testing.assert_allclose(rm.trimmed_mean(x, b, chunk=chunk), ref_trimmed_mean(x, b),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,f,m", [(3, 0, 1), (5, 1, 1), (10, 2, 1), (10, 2, 4), (13, 5, 13)])
def test_krum_is_the_reference(n, f, m):
  x = _data(n, 6, seed=n * 10 + f, outliers=f)
  aggregate, selected = rm.krum(x, f, m)
  want, want_selected = ref_krum(x, f, m)
  np.testing.assert_array_equal(np.asarray(selected), want_selected)
  assert selected.dtype == jnp.int32 and selected.shape == (m,)
  np.testing.assert_allclose(aggregate, want, rtol=1e-5, atol=1e-5)
  if f and m <= n - f:
    assert not set(np.asarray(selected)) & set(range(n - f, n))  # no outlier chosen


@pytest.mark.parametrize("n,f", [(3, 0), (7, 1), (10, 1), (11, 2), (16, 3)])
@pytest.mark.parametrize("chunk", [None, 2])
def test_bulyan_is_the_reference(n, f, chunk):
  x = _data(n, 5, seed=n + 100 * f, outliers=f)
  aggregate, selected = rm.bulyan(x, f, chunk=chunk)
  want, want_selected = ref_bulyan(x, f)
  np.testing.assert_array_equal(np.asarray(selected), want_selected)
  np.testing.assert_allclose(aggregate, want, rtol=1e-5, atol=1e-5)


def test_geometric_median_is_weiszfelds_iteration_and_converges():
  x = _data(12, 7, seed=3, outliers=3)
  for iterations in (0, 1, 5):
    np.testing.assert_allclose(rm.geometric_median(x, max_iterations=iterations, tol=0),
                               ref_weiszfeld(x, iterations), rtol=1e-4, atol=1e-4)
  v = np.asarray(rm.geometric_median(x, max_iterations=500, tol=0), np.float64)
  np.testing.assert_allclose(v, ref_weiszfeld(x, 2000), atol=2e-3)

  def objective(p):
    return np.linalg.norm(x.astype(np.float64) - p, axis=1).sum()
  rng = np.random.default_rng(0)
  for _ in range(20):  # no nearby point is better
    assert objective(v) <= objective(v + rng.normal(size=7) * 5e-2) + 1e-6
  # The default stops early, once a step moves the median by <= 1e-6 relative.
  _, iterations = rm._weiszfeld(jnp.asarray(x), 100, 1e-6, 1e-6)
  assert 1 < int(iterations) < 100


@pytest.mark.parametrize("iterations", [1, 3])
def test_centered_clipping_is_the_reference(iterations):
  x = _data(9, 4, seed=5, outliers=2)
  center = np.full(4, 0.5, np.float32)
  np.testing.assert_allclose(rm.centered_clipping(x, center, 1.5, iterations),
                             ref_centered_clipping(x, center, 1.5, iterations),
                             rtol=1e-5, atol=1e-5)


def test_centered_clipping_bounds_each_clients_pull():
  honest = np.zeros((8, 3), np.float32)
  x = np.concatenate([honest, np.full((2, 3), 1e6, np.float32)])
  out = rm.centered_clipping(x, np.zeros(3), radius=1.0)
  assert np.linalg.norm(out) <= 2 * 1.0 / 10 + 1e-6  # f * radius / n


@pytest.mark.parametrize("n,f", [(1, 0), (4, 1), (10, 3), (7, 6)])
def test_nearest_neighbor_mixing_is_the_reference(n, f):
  x = _data(n, 5, seed=n + f, outliers=f)
  np.testing.assert_allclose(rm.nearest_neighbor_mixing(x, f), ref_nnm(x, f),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,s", [(10, 3), (10, 5), (7, 1), (4, 10), (1, 1)])
def test_bucketing_is_the_reference(n, s):
  x = _data(n, 3, seed=n * s)
  key = jax.random.PRNGKey(n + s)
  out = rm.bucketing(x, s, key)
  assert out.shape == (-(-n // s), 3)
  np.testing.assert_allclose(out, ref_bucketing(x, s, key), rtol=1e-5, atol=1e-5)
  # Every row lands in exactly one bucket: the count-weighted means give the mean.
  counts = [min(s, n - j) for j in range(0, n, s)]
  np.testing.assert_allclose(np.average(out, axis=0, weights=counts), x.mean(axis=0),
                             rtol=1e-5, atol=1e-5)
  # A typed key gives the same buckets.
  typed = jax.random.wrap_key_data(key)
  np.testing.assert_allclose(rm.bucketing(x, s, typed), out)


def test_bucketing_shuffles_differently_per_key():
  x = np.arange(12, dtype=np.float32)[:, None]
  a = rm.bucketing(x, 3, jax.random.PRNGKey(0))
  b = rm.bucketing(x, 3, jax.random.PRNGKey(1))
  assert not np.allclose(a, b)


# ------------------------------------------------- jit and symbolic n


def test_every_rule_compiles_with_static_arguments():
  x = jnp.asarray(_data(11, 4, seed=1, outliers=2))
  key = jax.random.PRNGKey(0)
  cases = [
      (rm.coordinate_median, dict(chunk=3)),
      (rm.trimmed_mean, dict(num_trimmed=2)),
      (rm.krum, dict(f=2, m=3)),
      (rm.bulyan, dict(f=2)),
      (rm.geometric_median, dict(max_iterations=10)),
      (rm.nearest_neighbor_mixing, dict(f=2)),
  ]
  for fn, kwargs in cases:
    jitted = jax.jit(fn, static_argnames=tuple(kwargs))
    for got, want in zip(jax.tree_util.tree_leaves(jitted(x, **kwargs)),
                         jax.tree_util.tree_leaves(fn(x, **kwargs))):
      np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=fn.__name__)
  clip = jax.jit(rm.centered_clipping, static_argnames=("iterations",))
  np.testing.assert_allclose(clip(x, jnp.zeros(4), 1.0, iterations=2),
                             rm.centered_clipping(x, jnp.zeros(4), 1.0, iterations=2),
                             rtol=1e-6)
  bucket = jax.jit(rm.bucketing, static_argnames=("bucket_size",))
  np.testing.assert_allclose(bucket(x, 3, key), rm.bucketing(x, 3, key), rtol=1e-6)


@pytest.mark.parametrize("rule", [rm.coordinate_median, lambda x, chunk: rm.trimmed_mean(
    x, 20, chunk=chunk)], ids=["median", "trimmed_mean"])
def test_chunks_keep_the_sort_temporaries_small(rule):
  """Compiled only (nothing runs): with `chunk` the sort's temporaries are a
  block of columns, not a copy of the whole [n, d] matrix."""
  x = jax.ShapeDtypeStruct((200, 100_000), jnp.float32)     # 80 MB

  def temp_bytes(chunk):
    compiled = jax.jit(lambda x: rule(x, chunk=chunk)).lower(x).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip("this JAX backend reports no memory analysis")
    return analysis.temp_size_in_bytes

  whole, chunked = temp_bytes(None), temp_bytes(1024)
  assert whole >= 200 * 100_000 * 4        # a sorted copy of x
  assert chunked < whole / 20


_SYMBOLIC = [
    ("coordinate_median", lambda x: rm.coordinate_median(x)),
    ("coordinate_median_chunked", lambda x: rm.coordinate_median(x, chunk=2)),
    ("trimmed_mean", lambda x: rm.trimmed_mean(x, 1)),
    ("trimmed_mean_fraction", lambda x: rm.trimmed_mean(x, x.shape[0] // 4)),
    ("krum", lambda x: rm.krum(x, 2, 3)),
    ("bulyan", lambda x: rm.bulyan(x, 1)[0]),  # its selection is padded to [n] with -1
    ("geometric_median", lambda x: rm.geometric_median(x, 20)),
    ("centered_clipping", lambda x: rm.centered_clipping(x, jnp.ones(3), 2.0, 2)),
    ("nearest_neighbor_mixing", lambda x: rm.nearest_neighbor_mixing(x, 2)),
    ("bucketing", lambda x: rm.bucketing(x, 3, jax.random.PRNGKey(7))),
]


@pytest.mark.parametrize("name,fn", _SYMBOLIC, ids=[c[0] for c in _SYMBOLIC])
def test_rules_export_with_a_symbolic_number_of_clients(name, fn):
  """fedjit types a `float32[?,d]` parameter with a symbolic size, and
  serializes computations with jax.export: the rules must not need n."""
  n_sym = jax_export.symbolic_shape("n")[0]
  exported = jax_export.export(jax.jit(fn))(jax.ShapeDtypeStruct((n_sym, 3), jnp.float32))
  for n in (7, 12):
    x = _data(n, 3, seed=n, outliers=1)
    for got, want in zip(jax.tree_util.tree_leaves(exported.call(x)),
                         jax.tree_util.tree_leaves(fn(jnp.asarray(x)))):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)


# ---------------------------------------------------------- checks


def test_too_few_clients_say_what_is_needed():
  x = _data(9, 2)
  with pytest.raises(ValueError) as e:
    rm.bulyan(x, 2)
  assert str(e.value).startswith("Bulyan needs n >= 4f + 3 clients, got n=9 with f=2: ")
  assert "at most 1" in str(e.value)
  with pytest.raises(ValueError, match=r"krum needs n > 2f \+ 2 clients, got n=9 with f=4: "
                                       r"lower f to at most 3"):
    rm.krum(x, 4)
  with pytest.raises(ValueError, match="Krum needs at least 3 clients"):
    rm.krum(x[:2], 0)
  with pytest.raises(ValueError, match=r"trimmed_mean needs n > 2 \* num_trimmed clients.*"
                                       r"n=9 with num_trimmed=5.*num_trimmed <= 4"):
    rm.trimmed_mean(x, 5)
  with pytest.raises(ValueError, match="needs m <= n; got m=10 with n=9"):
    rm.krum(x, 1, m=10)
  with pytest.raises(ValueError, match="needs f < n.*n=9 with f=9"):
    rm.nearest_neighbor_mixing(x, 9)
  with pytest.raises(ValueError, match="at least one client"):
    rm.coordinate_median(np.zeros((0, 3), np.float32))


@pytest.mark.parametrize("call", [
    lambda x: rm.krum(x, -1), lambda x: rm.bulyan(x, -2),
    lambda x: rm.nearest_neighbor_mixing(x, -1), lambda x: rm.trimmed_mean(x, -1),
    lambda x: rm.coordinate_median(x, chunk=0), lambda x: rm.krum(x, 1, m=0),
    lambda x: rm.bucketing(x, 0, jax.random.PRNGKey(0)),
    lambda x: rm.geometric_median(x, max_iterations=-1),
    lambda x: rm.geometric_median(x, nu=0.0),
    lambda x: rm.centered_clipping(x, np.zeros(2), radius=0.0),
    lambda x: rm.centered_clipping(x, np.zeros(2), radius=1.0, iterations=0),
])
def test_negative_or_zero_arguments_are_value_errors(call):
  with pytest.raises(ValueError, match=">"):
    call(_data(9, 2))


@pytest.mark.parametrize("call", [
    lambda x: rm.krum(x, 1.5), lambda x: rm.krum(x, True), lambda x: rm.bulyan(x, "1"),
    lambda x: rm.trimmed_mean(x, 1.0),
])
def test_non_int_counts_are_type_errors(call):
  with pytest.raises(TypeError, match="an int >= 0.*static argument"):
    call(_data(9, 2))


def test_bad_matrices_say_what_is_expected():
  with pytest.raises(ValueError, match=r"2-D array x of shape \[n, d\].*got shape \(5,\)"):
    rm.coordinate_median(np.zeros(5, np.float32))
  with pytest.raises(TypeError, match="floating-point values; got x of dtype int32.*astype"):
    rm.krum(np.zeros((5, 2), np.int32), 1)
  with pytest.raises(ValueError, match=r"center of shape \[d\] = \[2\].*got shape \(3,\)"):
    rm.centered_clipping(_data(4, 2), np.zeros(3), 1.0)


# ------------------------------------------------------- NaN handling


def test_nan_sorts_as_the_largest_value_in_the_coordinate_rules():
  x = _data(7, 4, seed=2)
  x[0, 1] = x[3, 1] = x[5, 2] = np.nan    # fewer than half of any coordinate
  median = np.asarray(rm.coordinate_median(x))
  assert np.isfinite(median).all()
  np.testing.assert_allclose(median, np.median(np.where(np.isnan(x), np.inf, x), axis=0),
                             rtol=1e-6)
  assert np.isnan(np.median(x, axis=0)).any()  # NumPy's differs here, as documented
  trimmed = np.asarray(rm.trimmed_mean(x, 2))   # 2 >= the NaNs of any coordinate
  np.testing.assert_allclose(trimmed, ref_trimmed_mean(x, 2), rtol=1e-5)
  assert np.isfinite(trimmed).all()


def test_non_finite_rows_are_infinitely_far_in_the_distance_rules():
  x = _data(10, 3, seed=4)
  x[2, 0] = np.nan
  x[7, 1] = np.inf
  aggregate, selected = rm.krum(x, 2, m=3)
  assert np.isfinite(np.asarray(aggregate)).all()
  assert not {2, 7} & set(np.asarray(selected))
  aggregate, selected = rm.bulyan(np.concatenate([x, _data(1, 3, seed=9)]), 2)
  assert np.isfinite(np.asarray(aggregate)).all()
  assert not {2, 7} & set(np.asarray(selected))
  mixed = np.asarray(rm.nearest_neighbor_mixing(x, 2))
  finite_rows = [i for i in range(10) if i not in (2, 7)]
  assert np.isfinite(mixed[finite_rows]).all()
  clean = x.copy()
  np.testing.assert_allclose(mixed[finite_rows],
                             ref_nnm(np.where(np.isfinite(clean), clean, 1e30), 2)[finite_rows],
                             rtol=1e-5, atol=1e-5)


def test_the_averaging_rules_propagate_nan():
  x = _data(6, 2, seed=1)
  x[4, 1] = np.nan
  assert np.isnan(np.asarray(rm.geometric_median(x))).all()
  assert np.isnan(np.asarray(rm.centered_clipping(x, np.zeros(2), 1.0))).any()
  buckets = np.asarray(rm.bucketing(x, 2, jax.random.PRNGKey(0)))
  assert np.isnan(buckets).any(axis=1).sum() == 1  # only the bucket holding row 4


# ------------------------------------------------------- robustness


def test_byzantine_rows_do_not_move_the_robust_rules():
  rng = np.random.default_rng(11)
  n, f, d = 15, 3, 8
  honest = (rng.normal(size=d) + 0.1 * rng.normal(size=(n - f, d))).astype(np.float32)
  x = np.concatenate([honest, np.full((f, d), 1e6, np.float32)])
  target = honest.mean(axis=0)
  spread = honest.std(axis=0).max()
  results = {
      "median": rm.coordinate_median(x),
      "trimmed mean": rm.trimmed_mean(x, f),
      "krum": rm.krum(x, f)[0],
      "multi-krum": rm.krum(x, f, m=n - f)[0],
      "bulyan": rm.bulyan(x, f)[0],
      "geometric median": rm.geometric_median(x),
      "mixing then krum": rm.krum(rm.nearest_neighbor_mixing(x, f), f)[0],
  }
  for name, got in results.items():
    assert np.abs(np.asarray(got) - target).max() < 3 * spread, name
  assert np.abs(x.mean(axis=0) - target).max() > 1e5  # the plain mean is gone
