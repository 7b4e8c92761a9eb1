"""A small, eager dataset of NumPy examples, for client data.

`Dataset` covers what federated simulation needs from `tf.data`:
`from_tensor_slices`, `from_tensors`, `map`, `batch`, `shuffle`, `repeat`,
`take` and `element_spec`, on examples that are (nested) dicts, tuples or
namedtuples of arrays (built from NumPy or JAX arrays, Python lists or
scalars, with tf.data's dtypes). It is eager and columnar: a
dataset holds its elements as stacked arrays (or a list of batches), so
thousands of small client datasets stay cheap, and a federated computation
accepts it directly as a `SequenceType` value.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np

from fedjit.core import StructType, TensorType, Type, to_type

__all__ = ["Dataset"]


def _name(path) -> str:
  """A component's place in a dataset's structure, e.g. `[0]['x']`."""
  key = jax.tree_util.keystr(tuple(path))
  return f"component {key}" if key else "the input"


def _leading(tree, what: str = "Dataset.from_tensor_slices slices every component "
                               "along its first axis") -> int:
  """The number of examples (or batches): the common first dimension."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  if not leaves:
    raise ValueError("A dataset needs at least one array, got an empty structure "
                     f"{tree!r}. Give a tuple or dict with at least one component.")
  sizes = []
  for path, leaf in leaves:
    shape = np.shape(leaf)
    if not shape:
      raise ValueError(
          f"{what}, but {_name(path)} is a scalar (shape ()), which has no axis to slice. Give "
          f"a list or array with one entry per example (e.g. [1.0, 2.0, 3.0]), or use "
          f"Dataset.from_tensors(value) for a dataset of a single element.")
    sizes.append((path, shape[0]))
  first_path, n = sizes[0]
  for path, m in sizes[1:]:
    if m != n:
      raise ValueError(
          f"All components of a dataset must have the same first dimension (the "
          f"number of examples), but {_name(first_path)} has {n} and {_name(path)} "
          f"has {m}. Give every component one entry per example.")
  return n


_PY_SCALARS = (bool, int, float, complex, str, bytes)


def _python_only(value) -> bool:
  """True if `value` is a Python scalar or a (nested) list/tuple of them only."""
  if isinstance(value, _PY_SCALARS):
    return True
  if isinstance(value, (list, tuple)):
    return all(_python_only(v) for v in value)
  return False


def _python_array(value, where: str) -> np.ndarray:
  """A Python scalar or list as an array, with tf.data's dtypes: floats become
  float32, ints int32 (int64 when a value does not fit), bools bool, strings
  NumPy strings (`str` or `bytes`)."""
  try:
    arr = np.asarray(value)
  except (ValueError, OverflowError) as e:  # ragged lists, too-large ints
    raise ValueError(f"Cannot make an array of {where}: {str(e).rstrip('.')}. Give a "
                     f"rectangular (non-ragged) list of numbers, or a NumPy array.") from None
  if arr.dtype == object:
    raise ValueError(f"Cannot make an array of {where}: its values are of mixed or "
                     f"unsupported types (or ragged lists). Give a rectangular list of "
                     f"numbers, bools or strings, or a NumPy array.")
  if arr.dtype == np.float64:
    return arr.astype(np.float32)
  if arr.dtype == np.int64:
    info = np.iinfo(np.int32)
    if arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
      return arr.astype(np.int32)
  return arr


def _to_array(value, path) -> np.ndarray:
  where = _name(path)
  if isinstance(value, np.ndarray):
    return value
  if isinstance(value, Dataset) or (
      isinstance(value, list) and any(isinstance(v, Dataset) for v in value)):
    raise TypeError(f"Datasets of datasets are not supported, but {where} is a fedjit "
                    f"Dataset (or a list of them). Give arrays (or lists) of examples, "
                    f"or join datasets with Dataset.concatenate.")
  if isinstance(value, (list, _PY_SCALARS)):
    if _python_only(value):
      return _python_array(value, where)
    if isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
      raise TypeError(
          f"A list becomes one array (as in tf.data), but {where} is a list of dicts. "
          f"Give a dict of lists instead, e.g. {{'x': [1.0, 2.0], 'y': [2.0, 4.0]}}.")
  try:
    arr = np.asarray(value)  # NumPy and JAX arrays and scalars, lists of arrays
  except (ValueError, TypeError) as e:
    raise ValueError(f"Cannot make an array of {where} (a {type(value).__name__}): "
                     f"{str(e).rstrip('.')}.") from None
  if arr.dtype == object:
    raise TypeError(f"Cannot make an array of {where}: a {type(value).__name__} is "
                    f"not an array, a number, a string or a list of them.")
  return arr


def _as_arrays(value, path=()) -> Any:
  """`value` with tf.data's idea of structure: tuples, namedtuples and dicts are
  structure; lists, scalars and arrays are components, made NumPy arrays."""
  if isinstance(value, Mapping):
    items = [(k, _as_arrays(v, path + (jax.tree_util.DictKey(k),)))
             for k, v in value.items()]
    try:
      return type(value)(items)
    except TypeError:  # a Mapping type that cannot be built from pairs
      return dict(items)
  if isinstance(value, tuple):
    fields = [_as_arrays(v, path + (jax.tree_util.SequenceKey(i),))
              for i, v in enumerate(value)]
    return type(value)(*fields) if hasattr(value, "_fields") else tuple(fields)
  if value is None:
    raise TypeError(f"A dataset's components must be arrays, numbers or lists, but "
                    f"{_name(path)} is None.")
  return _to_array(value, path)


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
  def from_tensor_slices(cls, tensors: Any) -> "Dataset":
    """A dataset whose examples are the slices of `tensors` along axis 0.

    As in `tf.data`: tuples, namedtuples and dicts (nested too) are the
    structure of an example; every other value is one component, made an
    array: NumPy and JAX arrays keep their dtypes, and Python lists and
    scalars get tf.data's (floats float32, ints int32, or int64 when a value
    does not fit, bools bool, strings NumPy `str`/`bytes`). Every component
    must have the same first dimension, the number of examples.

    Args:
      tensors: an array or list, or a tuple/namedtuple/dict structure of them.

    Returns:
      An unbatched `Dataset`; its `element_spec` drops the first axis.

    Raises:
      ValueError: if a component is a scalar (it has no axis to slice), the
        components' first dimensions differ, or the structure is empty.
      TypeError: if a component cannot be made an array (a list of dicts,
        None, an arbitrary object).

    Example:
      >>> ds = Dataset.from_tensor_slices(({'x': [1.0, 2.0, 3.0]}, {'y': [2.0, 4.0, 6.0]}))
      >>> str(ds.element_spec)
      '<<x=float32>,<y=float32>>'
      >>> ds.as_elements()[1]
      ({'x': np.float32(2.0)}, {'y': np.float32(4.0)})
    """
    columns = _as_arrays(tensors)
    _leading(columns)
    return cls(columns=columns, spec=_columns_spec(columns))

  @classmethod
  def from_tensors(cls, tensors: Any) -> "Dataset":
    """A dataset of one element: `tensors` as a whole (tf.data's `from_tensors`).

    Components are converted as in `from_tensor_slices`, but not sliced, so
    scalars are allowed.

    Example:
      >>> ds = Dataset.from_tensors({'x': [1.0, 2.0], 'n': 3})
      >>> str(ds.element_spec), len(ds)
      ('<n=int32,x=float32[2]>', 1)
    """
    element = _as_arrays(tensors)
    if not jax.tree_util.tree_leaves(element):
      raise ValueError(f"Dataset.from_tensors needs at least one component, got the "
                       f"empty structure {tensors!r}.")
    columns = jax.tree_util.tree_map(lambda a: a[None], element)
    return cls(columns=columns, spec=_columns_spec(columns))

  @classmethod
  def from_batches(cls, batches: list) -> "Dataset":
    """A batched dataset from a list of batches (structures of arrays or lists).

    Example:
      >>> ds = Dataset.from_batches([([1.0, 2.0], [0, 1]), ([3.0], [1])])
      >>> str(ds.element_spec), len(ds)
      ('<float32[?],int32[?]>', 2)
    """
    batches = [_as_arrays(b) for b in batches]
    if not batches:
      raise ValueError("from_batches needs at least one batch to know the element "
                       "type; use from_tensor_slices(...).batch(n) for empty data.")
    for b in batches:
      _leading(b, "Dataset.from_batches needs batches whose components hold the "
                  "examples along their first axis")
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

  def as_numpy_iterator(self) -> Iterator:
    """A generator over the elements as NumPy pytrees (tf.data's name). Keras
    accepts it where it takes a `tf.data.Dataset`.

    Example:
      >>> keras_model.evaluate(central_test.as_numpy_iterator())
    """
    return (element for element in self.as_elements())

  def as_keras_dataset(self) -> Any:
    """The batches as a `keras.utils.PyDataset`, for Keras's `fit`,
    `evaluate` and `predict` (where TFF code passes a `tf.data.Dataset`).

    Unlike a generator, it knows its length (no "ran out of data" warning)
    and can be read again for each epoch. Batch the dataset first.

    Example:
      >>> keras_model.evaluate(central_test.batch(32).as_keras_dataset())
    """
    if self._batches is None:
      raise TypeError(
          f"as_keras_dataset() needs a batched dataset: Keras reads batches, and this "
          f"dataset holds {len(self)} single examples. Call .batch(batch_size) first, e.g. "
          f"dataset.batch(32).as_keras_dataset().")
    import keras

    batches = self._batches

    class _Batches(keras.utils.PyDataset):
      def __len__(self):
        return len(batches)

      def __getitem__(self, index):
        batch = batches[index]
        return tuple(batch) if isinstance(batch, list) else batch

    return _Batches()

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
