"""Python values to and from the vectorized backend's representation
(`to_vectorized`, `from_vectorized`): a `{T}@CLIENTS` argument becomes a
`cohorts.Cohort` (datasets padded by `layouts.pad_clients`), results come back
as lists of client values."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from fedjit.core._buffers import aligned_zeros
from fedjit.core._errors import FederatedTypeError
from fedjit.core._padding import pad_sequences
from fedjit.core._placements import CLIENTS
from fedjit.core._types import (FederatedType, SequenceType, StructType, Type, build_container,
                                has_federated, struct_fields, tensor_types)
from fedjit.core._values import normalize, placed_members, to_numpy
from fedjit.core.backends.vectorized.cohorts import Cohort, check_prepared
from fedjit.core.backends.vectorized.layouts import ShapePolicy, pad_clients

__all__ = ["from_vectorized", "to_vectorized"]


def _stack(members: list, xp=np):
  if xp is np:
    def stack(*xs):
      out = aligned_zeros((len(xs),) + np.shape(xs[0]), np.asarray(xs[0]).dtype)
      for i, x in enumerate(xs):
        out[i] = x
      return out
    return jax.tree_util.tree_map(stack, *members)
  return jax.tree_util.tree_map(lambda *xs: xp.stack(xs), *members)


def _check_same_shapes(t: FederatedType, members: list, what: str) -> None:
  """Raises if clients' values of a `{T}@CLIENTS` type (not a sequence)
  differ in shape: they are stacked along a client axis."""
  leaf_types = tensor_types(t.member)
  first = [tuple(np.shape(l)) for l in jax.tree_util.tree_leaves(members[0])]
  for i, m in enumerate(members[1:], 1):
    shapes = [tuple(np.shape(l)) for l in jax.tree_util.tree_leaves(m)]
    for j, (a, b) in enumerate(zip(first, shapes)):
      if a == b:
        continue
      part = f" (its {leaf_types[j]} part)" if len(leaf_types) > 1 else ""
      raise FederatedTypeError(
          f"Expected clients' values of {t}{' for ' + what if what else ''} to have "
          f"one shape on the vectorized backend, which stacks them along a client "
          f"axis, but client 0 has shape {list(a)} and client {i} has shape "
          f"{list(b)}{part}. For data whose size differs between clients, declare a "
          f"sequence (fedjit.SequenceType(...): one element per example or batch), "
          f"which the vectorized backend pads and masks; or run this computation "
          f"on the reference backend: `with fedjit.backend('reference'): ...`.")


def _vec_member(t: Type, normalized: Any, xp=np) -> Any:
  if isinstance(t, SequenceType):
    padded = pad_sequences(t.element, [normalized], xp)
    return jax.tree_util.tree_map(lambda x: x[0], padded)
  return normalized


def to_vectorized(t: Type, value: Any, what: str = "", xp=np,
                  policy: "ShapePolicy | None" = None, client_ids: "list | None" = None) -> Any:
  """Python value -> vectorized representation (a pytree of arrays).

  A `{T}@CLIENTS` value becomes a `Cohort` (an all-equal one stays one
  value); sequences are padded. Cohorts of client datasets are padded with
  `policy`'s remembered layouts (`layouts.pad_clients`; the backend's
  `shape_policy`), or on their own with None. Errors name a bad client by
  its id in `client_ids` (or its position).
  """
  if isinstance(t, FederatedType):
    if isinstance(value, Cohort):
      check_prepared(t, value, what)
      return value  # already padded (prepared ahead, e.g. by run_training)
    members, is_list = placed_members(t, value, xp, what, client_ids)
    if not is_list:  # one value (at SERVER, or all-equal at CLIENTS)
      return _vec_member(t.member, members, xp)
    if isinstance(t.member, SequenceType):
      if xp is np:
        return pad_clients(t.member.element, members, policy)
      return Cohort.stacked(pad_sequences(t.member.element, members, xp), len(members))
    _check_same_shapes(t, members, what)
    return Cohort.stacked(_stack(members, xp), len(members))
  if isinstance(t, StructType) and has_federated(t):
    fields = struct_fields(t, value)
    return build_container(t, [to_vectorized(ft, v, what, xp, policy, client_ids)
                               for ft, v in zip(t.types(), fields)])
  return _vec_member(t, normalize(t, value, xp, what), xp)


def from_vectorized(t: Type, rep: Any) -> Any:
  """Vectorized representation -> Python value (CLIENTS values as lists)."""
  if isinstance(t, FederatedType):
    if t.placement == CLIENTS and not t.all_equal:
      n = _num_rows(rep)
      return [to_numpy(t.member, jax.tree_util.tree_map(lambda x: x[i], rep))
              for i in range(n)]
    return to_numpy(t.member, rep)
  if isinstance(t, StructType) and has_federated(t):
    fields = struct_fields(t, rep)
    return build_container(t, [from_vectorized(ft, v) for ft, v in zip(t.types(), fields)])
  return to_numpy(t, rep)


def _num_rows(rep) -> int:
  leaves = jax.tree_util.tree_leaves(rep)
  return int(np.shape(leaves[0])[0]) if leaves else 0
