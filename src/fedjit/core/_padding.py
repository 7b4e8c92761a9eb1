"""Padding client datasets (lists of elements) into `PaddedSequence` arrays and back:
the one place that knows the padded layout (data `[C, N, ...]`, a mask) and
its rounding rule for the number of elements (`bucket_size`, `pow2`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._buffers import aligned_zeros
from fedjit.core._sequence import PaddedSequence, is_batched
from fedjit.core._types import StructType, TensorType, Type, build_container, tensor_types

__all__ = ["bucket_size", "example_tree", "flatten_elements", "grown_sizes", 
           "max_leaf_sizes", "pad_sequences", "pow2", "unpad"]


_STEPS = (4, 5, 6, 7)  # quarter-octave steps: 4·2^k, 5·2^k, 6·2^k, 7·2^k


def bucket_size(n: int) -> int:
  """The padded size for `n`: the smallest of 1..8, 10, 12, 14, 16, 20, 24,
  28, 32, 40, ... (four steps per power of two) that is at least `n`.

  The number of elements (batches) of padded sequences is rounded up to
  these few sizes, so a compiled round is reused when the clients of
  different rounds hold slightly different amounts of data, at the cost of
  at most a quarter more (masked, skipped) steps. Batch sizes are not rounded.
  """
  if n <= 8:
    return max(int(n), 1)
  scale = 1
  while True:
    for step in _STEPS:
      if step * 2 * scale >= n:
        return step * 2 * scale
    scale *= 2


def max_leaf_sizes(leaf_types: list[TensorType], flat: list[list]) -> list[tuple]:
  """Largest size of every dimension of every leaf across all elements."""
  sizes = []
  for j, lt in enumerate(leaf_types):
    dims = list(lt.shape)
    for k, d in enumerate(dims):
      if d is None:
        dims[k] = max([e[j].shape[k] for c in flat for e in c] + [1])
    sizes.append(tuple(dims))
  return sizes


def grown_sizes(sizes: list[tuple], remembered: list[tuple]) -> list[tuple]:
  """Leaf shapes at least as large as both `sizes` and `remembered`, so
  that later cohorts keep the padded shapes (and compiled programs) of
  earlier ones."""
  return [tuple(max(a, b) for a, b in zip(s, m)) for s, m in zip(sizes, remembered)]


def flatten_elements(element_type: Type, clients: list[list]) -> list[list]:
  """Each client's (normalized) elements as lists of leaves, in JAX's order."""
  if isinstance(element_type, TensorType):
    return [[[e] for e in c] for c in clients]
  if (isinstance(element_type, StructType) and element_type.container in (tuple, list)
      and all(isinstance(f, TensorType) for f in element_type.types())):
    return [[list(e) for e in c] for c in clients]  # positional: JAX's order
  return [[jax.tree_util.tree_leaves(e) for e in c] for c in clients]


def pad_sequences(element_type: Type, clients: list[list], xp=np,
                  num_elements: int | None = None,
                  leaf_sizes: list[tuple] | None = None,
                  flat: list[list] | None = None) -> PaddedSequence:
  """Pads each client's list of (normalized) elements into one PaddedSequence.

  The result has a leading client axis: data leaves `[C, N, ...]` and mask
  `[C, N, B]` (batched elements) or `[C, N]`, where N is the most elements any
  client has and B the largest batch. `leaf_sizes` (one shape per leaf, at
  least the largest present) pads every leaf to a given shape instead;
  `flat` (each client's elements as lists of leaves) saves flattening again.
  """
  batched = is_batched(element_type)
  leaf_types = tensor_types(element_type)
  num_clients = len(clients)
  longest = max([len(c) for c in clients] + [1])
  n = bucket_size(longest) if num_elements is None else num_elements
  if n < longest:
    raise ValueError(f"num_elements={n} is less than the longest sequence ({longest}).")
  if flat is None:
    flat = flatten_elements(element_type, clients)
  sizes = max_leaf_sizes(leaf_types, flat) if leaf_sizes is None else list(leaf_sizes)
  bs = sizes[0][0] if batched else None
  if xp is not np:
    return _pad_traceable(element_type, flat, n, sizes, leaf_types, bs)
  # Buffers are not zeroed up front: every client's slab is written in full
  # below (its data, then zeros after it), so memory is touched only once.
  data = [aligned_zeros((num_clients, n) + s, lt.dtype, zero=False)
          for s, lt in zip(sizes, leaf_types)]
  mask = aligned_zeros((num_clients, n, bs) if batched else (num_clients, n), np.float32)
  def fill(ci: int) -> None:
    c = flat[ci]
    total = _contiguous(c, sizes) if batched and c else -1
    if total >= 0:
      # Full batches and a smaller last one: the client's examples are rows
      # 0..total of its slab, in order, copied with one call per leaf.
      for j in range(len(leaf_types)):
        slab = data[j][ci].reshape((n * bs,) + sizes[j][1:])
        np.concatenate([leaves[j] for leaves in c], axis=0, out=slab[:total])
        slab[total:] = 0
      mask[ci].reshape(-1)[:total] = 1.0
      return
    for j in range(len(leaf_types)):
      data[j][ci] = 0
    for ei, leaves in enumerate(c):
      for j, leaf in enumerate(leaves):
        data[j][(ci, ei) + tuple(slice(0, s) for s in np.shape(leaf))] = leaf
      if batched:
        mask[ci, ei, :np.shape(leaves[0])[0]] = 1.0
      else:
        mask[ci, ei] = 1.0

  for ci in range(num_clients):
    fill(ci)
  treedef = jax.tree_util.tree_structure(example_tree(element_type))
  return PaddedSequence(jax.tree_util.tree_unflatten(treedef, data), mask, element_type,
                        full=bool(mask.all()))


def pow2(n: int) -> int:
  return 1 << max(int(n) - 1, 0).bit_length()


def _contiguous(client: list, sizes: list) -> int:
  """The client's number of rows if its batches are all full except perhaps
  the last, with every other dimension at its padded size (so each leaf can
  be copied at once), else -1."""
  bs = sizes[0][0]
  tails = [tuple(s[1:]) for s in sizes]
  last = len(client) - 1
  total = 0
  for i, leaves in enumerate(client):
    rows = leaves[0].shape[0] if hasattr(leaves[0], "shape") else np.shape(leaves[0])[0]
    if rows != bs and i != last:
      return -1
    for leaf, tail in zip(leaves, tails):
      shape = leaf.shape if hasattr(leaf, "shape") else np.shape(leaf)
      if shape[0] != rows or tuple(shape[1:]) != tail:
        return -1
    total += rows
  return total


def _pad_traceable(element_type, flat, n, sizes, leaf_types, bs) -> PaddedSequence:
  """pad_sequences with jax.numpy, for elements that may be JAX tracers."""
  data = []
  for j, (size, lt) in enumerate(zip(sizes, leaf_types)):
    per_client = []
    for c in flat:
      rows = [jnp.pad(jnp.asarray(e[j], lt.dtype),
                      [(0, full - have) for full, have in zip(size, jnp.shape(e[j]))])
              for e in c]
      rows += [jnp.zeros(size, lt.dtype)] * (n - len(c))
      per_client.append(jnp.stack(rows))
    data.append(jnp.stack(per_client))
  mask = np.zeros((len(flat), n, bs) if bs is not None else (len(flat), n), np.float32)
  for ci, c in enumerate(flat):
    for ei, leaves in enumerate(c):
      if bs is not None:
        mask[ci, ei, :np.shape(leaves[0])[0]] = 1.0
      else:
        mask[ci, ei] = 1.0
  treedef = jax.tree_util.tree_structure(example_tree(element_type))
  return PaddedSequence(jax.tree_util.tree_unflatten(treedef, data), jnp.asarray(mask),
                        element_type)


def example_tree(t: Type):
  if isinstance(t, TensorType):
    return 0
  return build_container(t, [example_tree(e) for e in t.types()])


def unpad(seq: PaddedSequence) -> list:
  """A single (unstacked) PaddedSequence -> list of real elements."""
  mask = np.asarray(seq.mask)
  out = []
  for i in range(mask.shape[0]):
    if seq.batched:
      k = int(mask[i].sum())
      if k == 0:
        continue
      out.append(jax.tree_util.tree_map(lambda x: np.asarray(x[i, :k]), seq.data))
    elif mask[i] > 0:
      # Scalars as NumPy scalars, as the reference backend returns them.
      out.append(jax.tree_util.tree_map(lambda x: _scalar_or_array(np.asarray(x[i])),
                                        seq.data))
  return out


def _scalar_or_array(a: np.ndarray):
  return a[()] if a.ndim == 0 else a
