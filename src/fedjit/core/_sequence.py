"""Sequences: a client's dataset as seen inside a jax computation.

Two representations share one interface:

* `PaddedSequence` (vectorized backend, and tracing): every element padded to
  a common shape and stacked, plus a mask of real examples. Padded elements
  leave the carry of `reduce` unchanged, so clients with different amounts of
  data can be processed together.
* `ListSequence` (reference backend): the client's elements as a Python list,
  folded in plain Python, one element at a time.

`abstract_value` gives the abstract (shape-only) value of a type, with which
computations are traced.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._types import (SequenceType, StructType, TensorType, Type, build_container,
                                to_type)

__all__ = ["Sequence", "PaddedSequence", "ListSequence", "abstract_value", "is_batched"]


# The size given to the batch axis and other unknown dimensions when
# `ListSequence.map` traces `fn` to find its result type: a prime no real
# fixed dimension is likely to equal, so that a result axis of this size is
# taken for the batch axis (and made `?` again) only when it is one.
_PROBE_SIZE = 7919


def _tensor_leaves(t: Type) -> list[TensorType]:
  if isinstance(t, TensorType):
    return [t]
  if isinstance(t, StructType):
    return [leaf for e in t.types() for leaf in _tensor_leaves(e)]
  raise TypeError(f"A sequence element must be tensors or structures, got {t}.")


def is_batched(element_type: Type) -> bool:
  """True if every tensor in `element_type` has a leading `?` (batch) axis."""
  leaves = _tensor_leaves(element_type)
  return bool(leaves) and all(l.shape and l.shape[0] is None for l in leaves)


class Sequence:
  """A client's dataset inside a `jax_computation` (a `SequenceType` value).

  Fold over it with `reduce`; Python iteration is not possible because the
  number of elements is not known while the computation is compiled.

  Example:
    >>> import numpy as np, fedjit
    >>> @fedjit.jax_computation(fedjit.SequenceType(fedjit.TensorType(np.float32, [None])))
    ... def total(ds):
    ...   return ds.reduce(np.float32(0), lambda acc, batch: acc + batch.sum())
    >>> float(total([np.ones(3, np.float32), np.ones(2, np.float32)]))
    5.0
  """

  element_type: Type

  def reduce(self, initial: Any, step_fn: Callable, *, with_mask: bool = False):
    """Folds `step_fn` over the elements, starting from `initial`.

    Args:
      initial: the initial carry (a pytree of arrays).
      step_fn: `step_fn(carry, element) -> carry`, or with `with_mask=True`,
        `step_fn(carry, element, mask) -> carry`, where `mask` is a float32
        array with 1.0 for each real example of a batch and 0.0 for padding
        (on the reference backend it is all ones). Use the mask to make
        results exact when batches are padded: the last, smaller batch of a
        client is padded to the common batch size on the vectorized backend.

    Returns:
      The final carry.
    """
    raise NotImplementedError

  def map(self, fn: Callable, *, with_mask: bool = False) -> "Sequence":
    """Applies `fn` to every element, returning a new sequence.

    For batched elements, `fn` must keep the batch axis (act row by row), or
    be given the mask (`with_mask=True`: `fn(element, mask)`) so that it can
    ignore padded rows: a padded batch would otherwise change a per-batch
    reduction such as `jnp.sum(batch + 1)`.
    """
    raise NotImplementedError

  def sum(self):
    """The sum of all elements (elements must have fully known shapes)."""
    if not is_batched(self.element_type) and any(
        None in l.shape for l in _tensor_leaves(self.element_type)):
      raise TypeError(f"sequence_sum needs elements of a fully known shape, got "
                      f"{self.element_type}.")
    if is_batched(self.element_type):
      raise TypeError(
          f"sequence_sum adds whole elements, but the elements {self.element_type} "
          f"are batches of unknown size. Use reduce() to sum over examples.")
    zero = jax.tree_util.tree_map(lambda l: jnp.zeros(l.shape, l.dtype),
                                  _zeros_spec(self.element_type))
    return self.reduce(zero, lambda acc, x: jax.tree_util.tree_map(jnp.add, acc, x))

  def __iter__(self):
    raise TypeError(
        "A fedjit Sequence cannot be iterated in Python inside a jax_computation: "
        "its length is only known when the compiled program runs. Fold over it "
        "with `dataset.reduce(initial, step_fn)` (or `with_mask=True` to see which "
        "examples are real), e.g. "
        "`weights = dataset.reduce(weights, lambda w, batch: sgd_step(w, batch))`.")


def _zeros_spec(t: Type):
  if isinstance(t, TensorType):
    return jax.ShapeDtypeStruct(t.shape, t.dtype)
  return build_container(t, [_zeros_spec(e) for e in t.types()])


def like(new: Any, old: Any, what: str) -> Any:
  """`new` with the tree structure and dtypes of `old` (a loop carry).

  Containers may differ (a list for a tuple); the leaves must correspond.
  """
  old_leaves, treedef = jax.tree_util.tree_flatten(old)
  new_leaves = jax.tree_util.tree_leaves(new)
  if len(new_leaves) != len(old_leaves):
    raise TypeError(
        f"{what} must return a value with the structure of its input carry "
        f"{treedef}, but returned {jax.tree_util.tree_structure(new)}.")
  return jax.tree_util.tree_unflatten(treedef, [
      jnp.asarray(n, dtype=jnp.result_type(o)) for n, o in zip(new_leaves, old_leaves)])


def _select(pred, new, old):
  return jax.tree_util.tree_map(lambda n, o: jnp.where(pred, n, o), new, old)


@jax.tree_util.register_pytree_node_class
class PaddedSequence(Sequence):
  """A sequence as stacked, padded elements and a mask of real examples.

  `data` holds the elements stacked along a leading axis of length
  `num_elements`. For batched elements (leading `?` axis) `mask` has shape
  `[num_elements, batch_size]`, else `[num_elements]`; it is 1.0 for real
  examples. An element with no real example is padding and is skipped.
  `full=True` says (statically) that there is no padding at all, so the
  compiled loop needs no test for it.

  With `row` (a scalar index, usually traced), `data` and `mask` have one more
  leading axis (clients) and the sequence is their row `row`: a client's
  view of a padded cohort or population. Its elements are read one at a
  time where they are used, so a loop over clients does not first copy each
  client's whole dataset out of the cohort.
  """

  def __init__(self, data: Any, mask: jax.Array, element_type: Type, full: bool = False,
               row: Any = None):
    self.data = data
    self.mask = mask
    self.element_type = element_type
    self.full = bool(full)
    self.row = row

  def tree_flatten(self):
    return (self.data, self.mask, self.row), (self.element_type, self.full)

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(children[0], children[1], aux[0], aux[1], children[2])

  def rows(self) -> "PaddedSequence":
    """The same sequence without a `row` view (its row taken out)."""
    if self.row is None:
      return self
    r = self.row
    return PaddedSequence(jax.tree_util.tree_map(lambda a: a[r], self.data), self.mask[r],
                          self.element_type, self.full)

  @property
  def batched(self) -> bool:
    return is_batched(self.element_type)

  def _valid(self, mask):
    return mask.any() if self.batched else mask > 0

  def reduce(self, initial, step_fn, *, with_mask: bool = False):
    initial = jax.tree_util.tree_map(jnp.asarray, initial)

    def step(carry, element, mask):
      if with_mask:
        new = step_fn(carry, element, mask.astype(jnp.float32))
      else:
        new = step_fn(carry, element)
      return like(new, carry, "reduce's step")

    def body(carry, xs):
      element, mask = xs
      if self.full:
        return step(carry, element, mask), None
      # Padding elements leave the carry as it is. `cond` skips their work when
      # clients run one after another; under vmap it becomes a select.
      return jax.lax.cond(self._valid(mask), step, lambda c, e, m: c,
                          carry, element, mask), None

    if self.row is None:
      carry, _ = jax.lax.scan(body, initial, (self.data, self.mask))
      return carry
    r = self.row

    def body_at(carry, k):
      # Element k of row r, indexed where it is used (no copy of the row).
      element = jax.tree_util.tree_map(lambda a: a[r, k], self.data)
      return body(carry, (element, self.mask[r, k]))
    carry, _ = jax.lax.scan(body_at, initial, jnp.arange(self.mask.shape[1]))
    return carry

  def map(self, fn, *, with_mask: bool = False):
    if self.row is not None:
      return self.rows().map(fn, with_mask=with_mask)
    if with_mask:
      mapped = jax.vmap(fn)(self.data, self.mask.astype(jnp.float32))
    else:
      mapped = jax.vmap(fn)(self.data)
    out_type = to_type(jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), mapped))
    if not self.batched:
      return PaddedSequence(mapped, self.mask, out_type, self.full)
    bs = self.mask.shape[1]
    leaves = jax.tree_util.tree_leaves(mapped)
    if all(l.ndim >= 2 and _same_dim(l.shape[1], bs) for l in leaves):
      return PaddedSequence(mapped, self.mask, _unknown_batch(out_type), self.full)
    if not with_mask:
      raise TypeError(
          f"sequence_map's function turns batches of {self.element_type} into "
          f"{out_type}, dropping the batch axis, so it would see the rows that pad "
          f"a smaller last batch. Pass with_mask=True and weight rows by the mask: "
          f"fn(batch, mask), e.g. lambda b, m: jnp.sum(b * m[:, None]).")
    return PaddedSequence(mapped, self.mask.any(axis=1).astype(self.mask.dtype), out_type)


def _same_dim(a, b) -> bool:
  try:
    return bool(a == b)
  except Exception:  # symbolic dimensions that cannot be compared
    return False


def _unknown_batch(t: Type) -> Type:
  if isinstance(t, TensorType):
    return TensorType(t.dtype, (None,) + t.shape[1:])
  return StructType([(n, _unknown_batch(e)) for n, e in t.items()], container=t.container)


class ListSequence(Sequence):
  """A sequence as a Python list of elements (reference backend)."""

  def __init__(self, elements: list, element_type: Type):
    self.elements = list(elements)
    self.element_type = element_type

  def __len__(self) -> int:
    return len(self.elements)

  def _mask(self, element):
    if is_batched(self.element_type):
      n = jax.tree_util.tree_leaves(element)[0].shape[0]
      return jnp.ones((n,), jnp.float32)
    return jnp.ones((), jnp.float32)

  def reduce(self, initial, step_fn, *, with_mask: bool = False):
    carry = initial
    for element in self.elements:
      if with_mask:
        new = step_fn(carry, element, self._mask(element))
      else:
        new = step_fn(carry, element)
      carry = like(new, carry, "reduce's step")
    return carry

  def map(self, fn, *, with_mask: bool = False):
    # The result type is what the padded representation gives (so that an
    # empty sequence is typed too, and misuse fails the same way).
    abstract = abstract_value(
        _sequence_type(self.element_type), lambda key: 1 if key == "n" else _PROBE_SIZE)
    out_type = jax.eval_shape(lambda s: s.map(fn, with_mask=with_mask), abstract).element_type
    if with_mask:
      out = [fn(e, self._mask(e)) for e in self.elements]
    else:
      out = [fn(e) for e in self.elements]
    return ListSequence(out, out_type)


def _sequence_type(element_type):
  return SequenceType(element_type)


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
