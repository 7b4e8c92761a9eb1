"""A small, eager dataset of NumPy examples, for client data.

`Dataset` covers what federated simulation needs from `tf.data`: `map`,
`batch`, `shuffle`, `repeat`, `take` and `element_spec`, on examples that are
dicts, tuples or namedtuples of NumPy arrays. It is eager and columnar: a
dataset holds its elements as stacked arrays (or a list of batches), so
thousands of small client datasets stay cheap, and a federated computation
accepts it directly as a `SequenceType` value.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import jax
import numpy as np

from fedjit.core import StructType, TensorType, Type, to_type

__all__ = ["Dataset"]


def _leading(tree) -> int:
  leaves = jax.tree_util.tree_leaves(tree)
  if not leaves:
    raise ValueError("A dataset needs at least one array.")
  sizes = {np.shape(l)[0] for l in leaves}
  if len(sizes) != 1:
    raise ValueError(f"All arrays of a dataset must have the same first dimension "
                     f"(the number of examples), got sizes {sorted(sizes)}.")
  return sizes.pop()


def _take_rows(tree, index):
  return jax.tree_util.tree_map(lambda a: a[index], tree)


def _spec_of(element: Any, batched: bool, fixed: int | None) -> Type:
  def leaf(a):
    a = np.asarray(a)
    shape = list(a.shape)
    if batched:
      shape[0] = fixed
    return TensorType(a.dtype, shape)
  return to_type(jax.tree_util.tree_map(leaf, element))


def _canonical(t: Type) -> Type:
  """`t` with each dtype as JAX computes it (64-bit only in x64 mode)."""
  if isinstance(t, TensorType):
    dt = jax.dtypes.canonicalize_dtype(t.dtype)
    return t if dt == t.dtype else TensorType(dt, t.shape)
  if isinstance(t, StructType):
    return StructType([(n, _canonical(ft)) for n, ft in t.items()], container=t.container)
  return t


def _columns_spec(columns: Any) -> Type:
  """The type of one example of stacked columns, from the columns' dtypes and
  shapes (not from one example's values)."""
  return to_type(jax.tree_util.tree_map(
      lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), columns))


_WIDE = (np.int64, np.uint64, np.float64, np.complex128)


def _x64_if_needed(tree) -> contextlib.AbstractContextManager:
  """JAX's 64-bit mode, on for this thread, when `tree` holds 64-bit arrays.

  Without it `jax.vmap` (and any `jnp` call in a mapped function) turns
  int64 into int32 and float64 into float32, silently wrapping large
  integers. The switch is thread-local and part of JAX's compilation cache
  key, so it affects neither other threads nor code compiled outside it; the
  common all-32-bit case runs without it, exactly as before.
  """
  wide = any(np.asarray(l).dtype in _WIDE for l in jax.tree_util.tree_leaves(tree))
  if not wide or jax.config.jax_enable_x64:
    return contextlib.nullcontext()
  state = getattr(jax, "enable_x64", None)
  if state is not None:  # jax >= 0.7: a configuration state, callable as a context
    return state(True)
  from jax.experimental import enable_x64  # older jax
  return enable_x64()


class Dataset:
  """An immutable sequence of examples (or batches) held as NumPy arrays.

  Build one with `Dataset.from_tensor_slices(arrays)`, where `arrays` is an
  array or a dict/tuple of arrays with the examples along the first axis.

  Example:
    >>> ds = Dataset.from_tensor_slices({"pixels": np.zeros((45, 28, 28), np.float32),
    ...                                  "label": np.zeros(45, np.int32)})
    >>> batches = ds.shuffle(45, seed=0).batch(20).map(
    ...     lambda e: (e["pixels"].reshape(-1, 784), e["label"].reshape(-1, 1)))
    >>> str(fedjit.SequenceType(batches.element_spec))
    '<float32[?,784],int32[?,1]>*'
    >>> len(batches)
    3
  """

  def __init__(self, columns: Any = None, batches: list | None = None,
               batch_size: int | None = None, drop_remainder: bool = False,
               spec: Type | None = None):
    # Exactly one representation: `columns` (unbatched, stacked examples) or
    # `batches` (a list of batch pytrees).
    self._columns = columns
    self._batches = batches
    self._batch_size = batch_size
    self._drop_remainder = drop_remainder
    self._spec = spec

  # ------------------------------------------------------------ construction

  @classmethod
  def from_tensor_slices(cls, arrays: Any) -> "Dataset":
    """A dataset whose examples are the slices of `arrays` along axis 0.

    Example:
      >>> Dataset.from_tensor_slices((np.arange(3.0), np.arange(3))).element_spec
      TensorType...
    """
    columns = jax.tree_util.tree_map(np.asarray, arrays)
    _leading(columns)
    return cls(columns=columns, spec=_columns_spec(columns))

  @classmethod
  def from_batches(cls, batches: list) -> "Dataset":
    """A batched dataset from a list of batches (pytrees of arrays)."""
    batches = [jax.tree_util.tree_map(np.asarray, b) for b in batches]
    if not batches:
      raise ValueError("from_batches needs at least one batch to know the element "
                       "type; use from_tensor_slices(...).batch(n) for empty data.")
    return cls(batches=batches, spec=_spec_of(batches[0], True, None))

  # -------------------------------------------------------------- inspection

  @property
  def element_spec(self) -> Type:
    """The fedjit type of one element; batch dimensions are `?`.

    64-bit columns (NumPy's default float64 and int64) are reported as the
    types JAX computes them in: float32 and int32 unless JAX's 64-bit mode is
    on, so the spec can be given directly as a model's `input_spec`.
    """
    return _canonical(self._spec)

  @property
  def is_batched(self) -> bool:
    return self._batches is not None

  def __len__(self) -> int:
    if self._batches is not None:
      return len(self._batches)
    return _leading(self._columns)

  @property
  def num_examples(self) -> int:
    """Examples in the dataset (counting every example of every batch)."""
    if self._batches is not None:
      return sum(_leading(b) for b in self._batches)
    return len(self)

  def __iter__(self) -> Iterator:
    return iter(self.as_elements())

  def as_elements(self) -> list:
    """The elements (examples, or batches) as a list of pytrees."""
    if self._batches is not None:
      return list(self._batches)
    return [_take_rows(self._columns, i) for i in range(len(self))]

  def __repr__(self) -> str:
    kind = "batches" if self.is_batched else "examples"
    return f"<fedjit Dataset: {len(self)} {kind} of {self.element_spec}>"

  # ---------------------------------------------------------- transformations

  def map(self, fn: Callable) -> "Dataset":
    """Applies `fn` to every element (example or batch).

    On an unbatched dataset, `fn` written for one example is applied to all
    examples at once when it vectorizes (JAX/NumPy code, through `jax.vmap`),
    and example by example otherwise. When the elements hold 64-bit arrays
    (int64, uint64, float64, complex128), `fn` runs with JAX's 64-bit mode on
    (for this call and this thread only), so that values and dtypes come out
    as NumPy would give them instead of being cut to 32 bits.

    Example:
      >>> ds.map(lambda e: (e["pixels"].reshape(-1), e["label"]))
      >>> Dataset.from_tensor_slices(np.array([2**40], np.int64)).map(lambda x: x + 1).numpy()
      array([1099511627777])
    """
    if self._batches is not None:
      if not self._batches:
        return Dataset(batches=[], spec=self._spec)
      with _x64_if_needed(self._batches[0]):
        out = [jax.tree_util.tree_map(np.asarray, fn(b)) for b in self._batches]
      fixed = self._batch_size if self._drop_remainder else None
      return Dataset(batches=out, batch_size=self._batch_size,
                     drop_remainder=self._drop_remainder, spec=_spec_of(out[0], True, fixed))
    n = len(self)
    if n == 0:
      return self
    with _x64_if_needed(self._columns):
      try:
        out = jax.tree_util.tree_map(np.asarray, jax.vmap(fn)(self._columns))
        if _leading(out) != n:
          raise ValueError("vmap changed the number of examples")
      except Exception:  # not vectorizable: one example at a time
        rows = [fn(e) for e in self.as_elements()]
        out = jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *rows)
    return Dataset(columns=out, spec=_columns_spec(out))

  def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
    """Groups consecutive examples into batches of `batch_size`.

    The last batch may be smaller unless `drop_remainder=True`. Batch
    dimensions appear as `?` in `element_spec` (as in TFF) unless the
    remainder is dropped.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
      raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    if self._batches is not None:
      raise ValueError("This dataset is already batched; batch it once, or unbatch "
                       "by building it again from_tensor_slices.")
    n = len(self)
    stop = n - n % batch_size if drop_remainder else n
    batches = [_take_rows(self._columns, slice(i, min(i + batch_size, stop)))
               for i in range(0, stop, batch_size)]
    example = _take_rows(self._columns, slice(0, 1)) if n else jax.tree_util.tree_map(
        lambda a: a[:0], self._columns)
    fixed = int(batch_size) if drop_remainder else None
    return Dataset(batches=batches, batch_size=int(batch_size), drop_remainder=drop_remainder,
                   spec=_spec_of(example, True, fixed))

  def _reindex(self, index: np.ndarray) -> "Dataset":
    if self._batches is not None:
      return Dataset(batches=[self._batches[i] for i in index], batch_size=self._batch_size,
                     drop_remainder=self._drop_remainder, spec=self._spec)
    return Dataset(columns=_take_rows(self._columns, index), spec=self._spec)

  def shuffle(self, buffer_size: int | None = None, seed: int | None = None) -> "Dataset":
    """Shuffles the elements, deterministically for a given seed.

    With `buffer_size` at least the dataset's length (or None) this is a
    uniform permutation; a smaller buffer shuffles locally, as `tf.data`'s
    buffer does (each output is drawn uniformly from the next `buffer_size`
    elements).
    """
    n = len(self)
    rng = np.random.default_rng(seed)
    if buffer_size is None or buffer_size >= n:
      return self._reindex(rng.permutation(n))
    if buffer_size < 1:
      raise ValueError(f"buffer_size must be >= 1, got {buffer_size}.")
    buffer = list(range(min(buffer_size, n)))
    nxt, order = len(buffer), []
    while buffer:
      k = int(rng.integers(len(buffer)))
      order.append(buffer[k])
      if nxt < n:
        buffer[k] = nxt
        nxt += 1
      else:
        buffer.pop(k)
    return self._reindex(np.asarray(order, np.int64))

  def repeat(self, count: int) -> "Dataset":
    """The dataset repeated `count` times (e.g. local epochs)."""
    if count is None or count < 0:
      raise ValueError("repeat needs a finite count: client datasets are finite in "
                       "fedjit (one round runs over them once).")
    return self._reindex(np.tile(np.arange(len(self)), int(count)))

  def take(self, count: int) -> "Dataset":
    """The first `count` elements."""
    return self._reindex(np.arange(min(int(count), len(self))))

  def skip(self, count: int) -> "Dataset":
    """All but the first `count` elements."""
    return self._reindex(np.arange(min(int(count), len(self)), len(self)))

  def concatenate(self, other: "Dataset") -> "Dataset":
    """This dataset followed by `other` (same element type)."""
    return concatenate([self, other])

  def numpy(self) -> Any:
    """All examples stacked (batches concatenated) as a pytree of arrays."""
    if self._batches is not None:
      if not self._batches:
        raise ValueError("The dataset is empty.")
      return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *self._batches)
    return self._columns


def concatenate(datasets: "list[Dataset]") -> "Dataset":
  """The datasets one after another (same element type, all batched or all
  not), joined in one pass: one `np.concatenate` per array, or one list of
  batches, instead of copying pairwise (which is quadratic in the number of
  datasets).

  Example:
    >>> concatenate([a, b, c]).numpy()  # a's examples, then b's, then c's
  """
  datasets = list(datasets)
  if not datasets:
    raise ValueError("concatenate needs at least one dataset.")
  first = datasets[0]
  for d in datasets[1:]:
    if d.element_spec != first.element_spec or d.is_batched != first.is_batched:
      raise TypeError(f"Cannot concatenate datasets of {first.element_spec} and "
                      f"{d.element_spec}.")
  if first.is_batched:
    return Dataset(batches=[b for d in datasets for b in d._batches],
                   batch_size=first._batch_size, spec=first._spec)
  columns = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs),
                                   *[d._columns for d in datasets])
  return Dataset(columns=columns, spec=first._spec)
