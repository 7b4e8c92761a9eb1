"""Byzantine-robust aggregation rules as pure JAX functions of a stacked matrix.

Every function takes `x` of shape `[n, d]`: row i is client i's value,
flattened (`fedjit.aggregators`' robust factories build it with
`federated_collect` and hand it here). They are plain JAX, so `jax.jit`
compiles them; `n` and `d` come from the shape, and the integer arguments
(`f`, `m`, `num_trimmed`, `bucket_size`, `chunk`, `iterations`, ...) fix
the program's shapes, so pass them as static arguments
(`jax.jit(krum, static_argnames=("f", "m"))`). Arguments are checked
when the function is traced, with errors that say what is needed.

The number of clients may also be a symbolic size (`jax.export`, and
fedjit's typing of a `float32[?,d]` parameter): nothing branches on n in
Python, the order statistics use masks rather than n-dependent slices, and
the checks on n run whenever n is known (a symbolic n is not checked).

Rules and their papers:

* `coordinate_median`, `trimmed_mean`: per-coordinate order statistics
  (Yin et al. 2018, "Byzantine-Robust Distributed Learning").
* `krum` (and Multi-Krum): Blanchard et al. 2017, "Machine Learning with
  Adversaries: Byzantine Tolerant Gradient Descent".
* `bulyan`: El Mhamdi et al. 2018, "The Hidden Vulnerability of
  Distributed Learning in Byzantium".
* `geometric_median`: RFA's smoothed Weiszfeld iteration (Pillutla et al.
  2022, "Robust Aggregation for Federated Learning").
* `centered_clipping`: Karimireddy et al. 2021, "Learning from History for
  Byzantine Robust Optimization".
* `nearest_neighbor_mixing`: Allouah et al. 2023, "Fixing by Mixing".
* `bucketing`: Karimireddy et al. 2022, "Byzantine-Robust Learning on
  Heterogeneous Datasets via Bucketing".

Non-finite values (NaN, inf). fedjit's client work already replaces a
client's non-finite update by zeros, so these rarely arrive; when they do:

* the per-coordinate rules sort with NaN after +inf (NumPy's and JAX's
  order), so a NaN counts as the largest value of its coordinate: the
  trimmed mean drops up to `num_trimmed` of them per coordinate and the
  median stays finite while fewer than half of a coordinate's values are
  NaN (unlike `np.median`, which returns NaN for any NaN);
* the distance rules (Krum, Bulyan's selection, nearest-neighbour mixing)
  treat a row holding a NaN or inf as infinitely far from every other row,
  so it is never selected (never mixed into a finite row) while enough
  finite rows remain;
* the averaging rules (`geometric_median`, `centered_clipping`,
  `bucketing`'s bucket means) propagate NaN: zero or drop such rows first
  (`fedjit.aggregators.zeroing_factory`).

Pairwise distances come from one n x n Gram matrix at HIGHEST matmul
precision (|a|^2 + |b|^2 - 2 a.b), which is fast but loses relative
precision when all rows share a large common offset.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import export as jax_export
from jax import lax

__all__ = ["coordinate_median", "trimmed_mean", "krum", "bulyan", "geometric_median",
           "centered_clipping", "nearest_neighbor_mixing", "bucketing"]

_HIGHEST = lax.Precision.HIGHEST


# ---------------------------------------------------------------- checks


def _check_matrix(owner: str, x: Any) -> jax.Array:
  """`x` as a JAX array after checking it is a 2-D float matrix, n >= 1."""
  if not hasattr(x, "shape") or not hasattr(x, "dtype"):
    x = jnp.asarray(x)
  if len(x.shape) != 2:
    raise ValueError(
        f"{owner} needs a 2-D array x of shape [n, d] (row i is client i's flattened "
        f"value); got shape {tuple(x.shape)}. Stack the clients' values first, e.g. "
        f"jnp.stack([v.ravel() for v in values]).")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{owner} needs floating-point values; got x of dtype {x.dtype}. "
                    f"Cast them first: x.astype(jnp.float32).")
  if x.shape[0] < 1:
    raise ValueError(f"{owner} needs at least one client (a row of x); got x of shape "
                     f"{tuple(x.shape)}.")
  return jnp.asarray(x)


def _check_int(owner: str, name: str, value: Any, minimum: int, meaning: str = "") -> int:
  """`value` as an int after checking it is an int >= `minimum`."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f"{owner} expects {name}{meaning} to be an int >= {minimum}, got "
                    f"{value!r}. Integer arguments fix the program's shapes, so pass a "
                    f"Python int (a static argument under jax.jit).")
  if value < minimum:
    raise ValueError(f"{owner} expects {name}{meaning} to be an int >= {minimum}, got "
                     f"{value}.")
  return int(value)


def _check_chunk(owner: str, chunk: Any) -> int | None:
  if chunk is None:
    return None
  return _check_int(owner, "chunk", chunk, 1, " (columns per block)")


_F = " (the number of Byzantine clients tolerated)"


def _check_positive(owner: str, name: str, value: Any) -> Any:
  """A Python number must be finite and > 0; an array is taken as is."""
  if isinstance(value, bool):
    raise TypeError(f"{owner} expects {name} to be a number > 0, got {value!r}.")
  if isinstance(value, numbers.Real):
    if not math.isfinite(value) or value <= 0:
      raise ValueError(f"{owner} expects {name} to be a finite number > 0, got {value}.")
  return value


def _known(n: Any) -> bool:
  """Whether a size is a concrete int (not a symbolic `jax.export` size)."""
  return isinstance(n, numbers.Integral) and not jax_export.is_symbolic_dim(n)


def _value(size: Any, dtype: Any = jnp.int32) -> jax.Array:
  """A (possibly symbolic) size as a JAX scalar."""
  return jnp.asarray(size).astype(dtype)


def _rows(n: Any) -> jax.Array:
  """0 ... n-1 as an int32 column `[n, 1]`."""
  return lax.iota(jnp.int32, n)[:, None]


# ------------------------------------------------------- column blocks


def _by_column_blocks(fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                      chunk: int | None) -> jax.Array:
  """`fn` ([n, c] -> [c]) applied to `x` ([n, d]) `chunk` columns at a time.

  The full blocks go through `lax.map` (one block's temporaries live at a
  time); the last `d % chunk` columns are one more call.
  """
  d = x.shape[1]
  if chunk is None or chunk >= d:
    return fn(x)
  full = d // chunk
  out = lax.map(lambda i: fn(lax.dynamic_slice_in_dim(x, i * chunk, chunk, axis=1)),
                jnp.arange(full)).reshape(full * chunk)
  if full * chunk < d:
    out = jnp.concatenate([out, fn(x[:, full * chunk:])])
  return out


def _mean_of_sorted_rows(s: jax.Array, lo: Any, hi: Any) -> jax.Array:
  """The mean over rows lo ... hi-1 of each column of `s` (masked, so the
  bounds may be symbolic and the other rows, NaN included, do not count)."""
  keep = (_rows(s.shape[0]) >= _value(lo)) & (_rows(s.shape[0]) < _value(hi))
  return jnp.sum(jnp.where(keep, s, 0), axis=0) / _value(hi - lo, s.dtype)


def _median_of_sorted(s: jax.Array) -> jax.Array:
  """The median of each column of the column-sorted `s` (NumPy's even-n
  convention: the mean of the two middle values)."""
  n = s.shape[0]
  return _mean_of_sorted_rows(s, (n - 1) // 2, n // 2 + 1)


# ------------------------------------------------------ per coordinate


def coordinate_median(x: Any, chunk: int | None = None) -> jax.Array:
  """The per-coordinate median of the rows of `x`.

  For even n it is the mean of the two middle values of each coordinate,
  NumPy's convention. A NaN sorts after +inf (see the module docstring).

  Args:
    x: `[n, d]` float array, one row per client.
    chunk: if given, the columns are sorted `chunk` at a time (`lax.map`
      over column blocks), so the sort's temporaries are `[n, chunk]`
      rather than `[n, d]` (for 1,000 clients and 1M parameters).

  Returns:
    A `[d]` array.

  Raises:
    ValueError: if `x` is not `[n, d]` with n >= 1, or `chunk < 1`.
    TypeError: if `x` is not floating point.

  Example:
    >>> coordinate_median(jnp.array([[1.0, 5.0], [2.0, -1.0], [10.0, 0.0], [3.0, 2.0]]))
    Array([2.5, 1. ], dtype=float32)
  """
  x = _check_matrix("coordinate_median", x)
  chunk = _check_chunk("coordinate_median", chunk)
  return _by_column_blocks(lambda b: _median_of_sorted(jnp.sort(b, axis=0)), x, chunk)


def _trimmed(n: Any, num_trimmed: Any, owner: str = "trimmed_mean") -> None:
  if _known(n) and _known(num_trimmed) and n <= 2 * num_trimmed:
    raise ValueError(
        f"{owner} needs n > 2 * num_trimmed clients (it drops num_trimmed values at "
        f"each end of every coordinate), got n={n} with num_trimmed={num_trimmed}: "
        f"pass num_trimmed <= {max((n - 1) // 2, 0)}, or aggregate more clients.")


def trimmed_mean(x: Any, num_trimmed: int, chunk: int | None = None) -> jax.Array:
  """The per-coordinate trimmed mean: drop the `num_trimmed` largest and
  smallest values of each coordinate and average the other n - 2b.

  Args:
    x: `[n, d]` float array, one row per client.
    num_trimmed: b >= 0, the values dropped at each end; needs n > 2b. (It
      may be a symbolic size such as `n // 10` when n is symbolic.)
    chunk: columns per block, as in `coordinate_median`.

  Returns:
    A `[d]` array.

  Raises:
    ValueError: if n <= 2b, b < 0, or `x` is not `[n, d]`.

  Example:
    >>> trimmed_mean(jnp.array([[1.0], [2.0], [3.0], [100.0]]), num_trimmed=1)
    Array([2.5], dtype=float32)
  """
  x = _check_matrix("trimmed_mean", x)
  b = num_trimmed
  if not jax_export.is_symbolic_dim(b):
    b = _check_int("trimmed_mean", "num_trimmed", num_trimmed, 0)
  chunk = _check_chunk("trimmed_mean", chunk)
  n = x.shape[0]
  _trimmed(n, b)
  return _by_column_blocks(lambda blk: _mean_of_sorted_rows(jnp.sort(blk, axis=0), b, n - b),
                           x, chunk)


# ------------------------------------------------------------ distances


def _pairwise_sq_distances(x: jax.Array) -> jax.Array:
  """`[n, n]` squared Euclidean distances; a non-finite row is at +inf from
  every other row and 0 from itself."""
  n = x.shape[0]
  sq = jnp.sum(x * x, axis=1)
  gram = jnp.matmul(x, x.T, precision=_HIGHEST)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0)
  finite = jnp.all(jnp.isfinite(x), axis=1)
  d2 = jnp.where(finite[:, None] & finite[None, :] & ~jnp.isnan(d2), d2, jnp.inf)
  return jnp.where(_rows(n) == _rows(n).T, jnp.zeros((), x.dtype), d2)


def _krum_scores(d2: jax.Array, remaining: jax.Array, k: Any) -> jax.Array:
  """Each row's sum of squared distances to its `k` nearest other rows among
  `remaining`; +inf for rows not remaining (and where fewer than k finite
  neighbours exist)."""
  n = d2.shape[0]
  others = jnp.where(remaining[None, :] & (_rows(n) != _rows(n).T), d2, jnp.inf)
  nearest = jnp.sort(others, axis=1)
  scores = jnp.sum(jnp.where(_rows(n).T < _value(k), nearest, 0), axis=1)
  return jnp.where(remaining, scores, jnp.inf)


def _check_krum(owner: str, n: Any, f: int, need: int, rule: str, fix: str):
  if _known(n) and n < need:
    raise ValueError(f"{owner} needs n {rule} clients, got n={n} with f={f}: {fix}")


def krum(x: Any, f: int, m: int = 1) -> tuple[jax.Array, jax.Array]:
  """Krum and Multi-Krum (Blanchard et al. 2017).

  Row i's score is the sum of its squared distances to its n - f - 2
  nearest other rows; Krum returns the lowest-scoring row, Multi-Krum
  (m > 1) the mean of the m lowest-scoring rows. Ties go to the lower
  index. A non-finite row is infinitely far from the others, so its score
  is +inf.

  Args:
    x: `[n, d]` float array, one row per client.
    f: the number of Byzantine clients tolerated, >= 0; needs n > 2f + 2.
    m: how many rows to average, 1 <= m <= n.

  Returns:
    `(aggregate, selected)`: the `[d]` mean of the selected rows and their
    `[m]` int32 indices, lowest score first.

  Raises:
    ValueError: if n <= 2f + 2, f < 0 or m is not in [1, n].

  Example:
    >>> x = jnp.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [0.05, 0.05],
    ...                [100.0, 100.0]])
    >>> aggregate, selected = krum(x, f=1)
    >>> selected
    Array([4], dtype=int32)
  """
  x = _check_matrix("krum", x)
  f = _check_int("krum", "f", f, 0, _F)
  m = _check_int("krum", "m", m, 1, " (the number of rows averaged)")
  n = x.shape[0]
  _check_krum("krum", n, f, 2 * f + 3, "> 2f + 2",
              f"lower f to at most {(n - 3) // 2}, or aggregate more clients (Krum "
              f"scores each client by its n - f - 2 nearest others)."
              if _known(n) and n >= 3 else "Krum needs at least 3 clients.")
  if _known(n) and m > n:
    raise ValueError(f"krum averages m of the n clients, so it needs m <= n; got m={m} "
                     f"with n={n}.")
  d2 = _pairwise_sq_distances(x)
  scores = _krum_scores(d2, jnp.ones(n, bool), n - f - 2)
  # top_k: ties to the lower index, and [m] for any n; the m +inf pads (never
  # chosen, m <= n) let it check k <= n + m when n is symbolic.
  _, selected = lax.top_k(-jnp.concatenate([scores, jnp.full(m, jnp.inf, scores.dtype)]), m)
  return jnp.mean(x[selected], axis=0), selected


def _bulyan_select(d2: jax.Array, f: int, theta: Any) -> tuple[jax.Array, jax.Array]:
  """`theta` rows chosen by repeated Krum, each removed once chosen: the
  `[n]` mask of the chosen rows, and the `[n]` int32 selection order (-1
  after the first theta)."""
  n = d2.shape[0]
  total = _value(n)

  def step(t, carry):
    remaining, order = carry
    k = jnp.maximum(total - t - f - 2, 1)
    scores = _krum_scores(d2, remaining, k)
    i = jnp.argmin(scores).astype(jnp.int32)
    # All remaining scores +inf (no finite neighbours left): the first remaining.
    i = jnp.where(remaining[i], i, jnp.argmax(remaining).astype(jnp.int32))
    return remaining.at[i].set(False), order.at[t].set(i)

  steps = theta if _known(theta) else _value(theta)
  remaining, order = lax.fori_loop(0, steps, step,
                                   (jnp.ones(n, bool), jnp.full(n, -1, jnp.int32)))
  return ~remaining, order


def bulyan(x: Any, f: int, chunk: int | None = None) -> tuple[jax.Array, jax.Array]:
  """Bulyan (El Mhamdi et al. 2018): Krum selection, then a trimmed
  per-coordinate average around the median.

  1. theta = n - 2f rows are chosen by repeated Krum: each step picks the
     remaining row with the lowest Krum score among the remaining rows (r of
     them; the score sums the max(r - f - 2, 1) nearest remaining others;
     ties to the lower index) and removes it.
  2. Per coordinate, the beta = theta - 2f chosen values closest to the
     chosen values' median (NumPy's even-count convention) are averaged
     (ties to the lower row index).

  Args:
    x: `[n, d]` float array, one row per client.
    f: the number of Byzantine clients tolerated, >= 0; needs n >= 4f + 3.
    chunk: columns per block for step 2, as in `coordinate_median`.

  Returns:
    `(aggregate, selected)`: the `[d]` aggregate and the `[theta]` int32
    indices in selection order (with a symbolic n, an `[n]` array whose
    entries after the first theta are -1).

  Raises:
    ValueError: if n < 4f + 3 or f < 0.

  Example:
    >>> x = jnp.array([[0.0], [0.1], [0.2], [0.3], [0.4], [0.5], [100.0]])
    >>> aggregate, selected = bulyan(x, f=1)   # theta = 5, beta = 3
    >>> aggregate
    Array([0.2], dtype=float32)
  """
  x = _check_matrix("bulyan", x)
  f = _check_int("bulyan", "f", f, 0, _F)
  chunk = _check_chunk("bulyan", chunk)
  n = x.shape[0]
  _check_krum("Bulyan", n, f, 4 * f + 3, ">= 4f + 3",
              f"lower f to at most {(n - 3) // 4}, or aggregate more clients (it "
              f"selects theta = n - 2f clients by Krum, then averages the theta - 2f "
              f"values nearest each coordinate's median)."
              if _known(n) and n >= 3 else "Bulyan needs at least 3 clients.")
  theta = n - 2 * f
  beta = theta - 2 * f
  chosen, order = _bulyan_select(_pairwise_sq_distances(x), f, theta)
  chosen = chosen[:, None]

  def closest_mean(block):
    # Masks, not a gather of the theta chosen rows: theta may be symbolic.
    s = jnp.sort(jnp.where(chosen, block, jnp.inf), axis=0)   # the chosen values first
    median = _mean_of_sorted_rows(s, (theta - 1) // 2, theta // 2 + 1)
    distance = jnp.where(chosen, jnp.abs(block - median), jnp.inf)
    nearest = jnp.argsort(distance, axis=0, stable=True)
    return _mean_of_sorted_rows(jnp.take_along_axis(block, nearest, axis=0), 0, beta)

  return _by_column_blocks(closest_mean, x, chunk), (order[:theta] if _known(n) else order)


# -------------------------------------------------------- iterative rules


def _weiszfeld(x: jax.Array, max_iterations: int, nu: float, tol: float
               ) -> tuple[jax.Array, jax.Array]:
  """RFA's smoothed Weiszfeld iteration; returns (median, iterations run)."""
  def step(v):
    distances = jnp.sqrt(jnp.sum(jnp.square(x - v), axis=1))
    w = 1 / jnp.maximum(jnp.asarray(nu, x.dtype), distances)
    return jnp.matmul(w, x, precision=_HIGHEST) / jnp.sum(w)

  def cond(carry):
    _, moved, i = carry
    return (i < max_iterations) & moved

  def body(carry):
    v, _, i = carry
    new = step(v)
    moved = jnp.sqrt(jnp.sum(jnp.square(new - v))) > tol * jnp.sqrt(jnp.sum(new * new))
    return new, moved, i + 1

  v, _, iterations = lax.while_loop(cond, body, (jnp.mean(x, axis=0), jnp.bool_(True),
                                                 jnp.int32(0)))
  return v, iterations


def _check_geometric_median(x, max_iterations, nu, tol):
  owner = "geometric_median"
  x = _check_matrix(owner, x)
  max_iterations = _check_int(owner, "max_iterations", max_iterations, 0)
  nu = _check_positive(owner, "nu", nu)
  if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
    raise TypeError(f"{owner} expects tol to be a number >= 0, got {tol!r}.")
  if not tol >= 0:
    raise ValueError(f"{owner} expects tol to be a number >= 0, got {tol!r}.")
  return x, max_iterations, nu, float(tol)


def geometric_median(x: Any, max_iterations: int = 100, nu: float = 1e-6,
                     tol: float = 1e-6) -> jax.Array:
  """The geometric median argmin_v sum_i |x_i - v|, by RFA's smoothed
  Weiszfeld iteration (Pillutla et al. 2022), every client weighted equally.

  Starting at the mean, each step is v <- sum_i w_i x_i / sum_i w_i with
  w_i = 1 / max(nu, |x_i - v|); `nu` > 0 keeps a row that coincides with
  v from dividing by zero. It stops after `max_iterations` steps, or once a
  step moves v by at most `tol * |v|` (`tol=0` runs every step). A
  non-finite row makes the result NaN.

  Args:
    x: `[n, d]` float array, one row per client.
    max_iterations: the most Weiszfeld steps, >= 0 (0 returns the mean).
    nu: the smoothing, > 0.
    tol: the relative step size at which to stop, >= 0.

  Returns:
    A `[d]` array.

  Raises:
    ValueError: for max_iterations < 0, nu <= 0 or tol < 0.

  Example:
    >>> x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1e6, 1e6]])
    >>> geometric_median(x)       # the mean is 2e5; this stays in the unit square
    Array([0.7886772, 0.7886772], dtype=float32)
  """
  x, max_iterations, nu, tol = _check_geometric_median(x, max_iterations, nu, tol)
  return _weiszfeld(x, max_iterations, nu, tol)[0]


def centered_clipping(x: Any, center: Any, radius: Any, iterations: int = 1) -> jax.Array:
  """Centered clipping (Karimireddy et al. 2021): from `center`, repeat
  v <- v + mean_i clip(x_i - v, radius), clip(z, r) = z * min(1, r / |z|).

  Each client moves v by at most radius / n per step, so f Byzantine
  clients move it by at most f * radius / n. A non-finite row makes the
  result NaN.

  Args:
    x: `[n, d]` float array, one row per client.
    center: the `[d]` starting point (in training, the previous round's
      aggregate, or its momentum).
    radius: the clipping radius, > 0 (a number or a scalar array).
    iterations: the steps, >= 1 (the paper finds 1 enough with a good center).

  Returns:
    A `[d]` array.

  Raises:
    ValueError: if `center` is not `[d]`, radius <= 0 or iterations < 1.

  Example:
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [100.0, 0.0]])
    >>> centered_clipping(x, jnp.zeros(2), radius=1.0)   # the outlier counts as 1
    Array([0.6666667 , 0.33333334], dtype=float32)
  """
  owner = "centered_clipping"
  x = _check_matrix(owner, x)
  iterations = _check_int(owner, "iterations", iterations, 1)
  radius = _check_positive(owner, "radius", radius)
  center = jnp.asarray(center)
  if center.shape != (x.shape[1],):
    raise ValueError(f"{owner} needs center of shape [d] = [{x.shape[1]}] (one value per "
                     f"coordinate of x), got shape {tuple(center.shape)}.")
  center = center.astype(x.dtype)
  r = jnp.asarray(radius, x.dtype)
  n = _value(x.shape[0], x.dtype)

  def step(_, v):
    z = x - v
    scale = jnp.minimum(1, r / jnp.sqrt(jnp.sum(z * z, axis=1)))  # |z| = 0: 1
    return v + jnp.matmul(scale, z, precision=_HIGHEST) / n

  return lax.fori_loop(0, iterations, step, center)


# ------------------------------------------------------ pre-aggregation


def _mix(weights: jax.Array, x: jax.Array) -> jax.Array:
  """`weights @ x` where a row of the result with a non-zero weight on a
  non-finite row of `x` is NaN, and no other row is touched by it."""
  finite = jnp.all(jnp.isfinite(x), axis=1)
  mixed = jnp.matmul(weights, jnp.where(finite[:, None], x, 0), precision=_HIGHEST)
  tainted = jnp.matmul(weights, (~finite).astype(x.dtype)) > 0
  return jnp.where(tainted[:, None], jnp.nan, mixed)


def nearest_neighbor_mixing(x: Any, f: int) -> jax.Array:
  """Nearest-neighbour mixing (Allouah et al. 2023): each row becomes the
  mean of its n - f nearest rows, itself included.

  Feed the result to another rule (Krum, a median, ...): mixing lowers the
  heterogeneity the rule sees. Ties among neighbours go to the lower index.
  A non-finite row is infinitely far from the others; a mixed row with a
  non-finite neighbour (only when fewer than n - f rows are finite) is NaN.

  Args:
    x: `[n, d]` float array, one row per client.
    f: the number of Byzantine clients tolerated, 0 <= f < n.

  Returns:
    The `[n, d]` mixed rows.

  Raises:
    ValueError: if f < 0 or f >= n.

  Example:
    >>> nearest_neighbor_mixing(jnp.array([[0.0], [1.0], [10.0]]), f=1)
    Array([[0.5],
           [0.5],
           [5.5]], dtype=float32)
  """
  x = _check_matrix("nearest_neighbor_mixing", x)
  f = _check_int("nearest_neighbor_mixing", "f", f, 0, _F)
  n = x.shape[0]
  if _known(n) and f >= n:
    raise ValueError(f"nearest_neighbor_mixing needs f < n (each client is mixed with "
                     f"its n - f nearest), got n={n} with f={f}: lower f to at most "
                     f"{n - 1}.")
  d2 = _pairwise_sq_distances(x)
  d2 = jnp.where(_rows(n) == _rows(n).T, -1, d2)  # itself first
  rank = jnp.argsort(jnp.argsort(d2, axis=1, stable=True), axis=1)
  k = _value(n - f, x.dtype)
  return _mix(jnp.where(rank < _value(n - f), 1 / k, jnp.zeros((), x.dtype)), x)


def bucketing(x: Any, bucket_size: int, key: Any) -> jax.Array:
  """Bucketing (Karimireddy et al. 2022): shuffle the rows, then average
  consecutive buckets of `bucket_size`.

  The shuffle is `perm = jnp.argsort(jax.random.bits(key, (n,)), stable=True)`
  (a uniformly random order of independent 32-bit draws; it works for a
  symbolic n too); bucket j holds rows perm[j*s] ... perm[(j+1)*s - 1].
  When s does not divide n the last bucket holds the remaining n mod s rows
  and is their mean: every bucket mean averages real rows only (nothing is
  padded or repeated), and the smaller bucket counts as much as a full one
  in the rule that follows. A bucket holding a non-finite row is NaN.

  Args:
    x: `[n, d]` float array, one row per client.
    bucket_size: s >= 1 (s >= n gives one bucket: the mean).
    key: a JAX PRNG key (typed, or raw `uint32[2]`).

  Returns:
    The `[ceil(n / s), d]` bucket means.

  Raises:
    ValueError: if bucket_size < 1.

  Example:
    >>> bucketing(jnp.array([[1.0], [2.0], [3.0], [4.0], [5.0]]), 2,
    ...           jax.random.PRNGKey(0)).shape
    (3, 1)
  """
  x = _check_matrix("bucketing", x)
  s = _check_int("bucketing", "bucket_size", bucket_size, 1)
  n = x.shape[0]
  buckets = (n + s - 1) // s
  perm = jnp.argsort(jax.random.bits(key, (n,), jnp.uint32), stable=True)
  position = jnp.zeros(n, jnp.int32).at[perm].set(lax.iota(jnp.int32, n))
  member = (position[None, :] // s) == _rows(buckets)            # [buckets, n]
  counts = jnp.minimum(s, _value(n) - s * _rows(buckets)).astype(x.dtype)
  return _mix(jnp.where(member, 1 / counts, jnp.zeros((), x.dtype)), x)
