"""Intrinsics: the communication and aggregation operators of federated code.

Each intrinsic checks placements and types while a federated computation is
traced, and adds one node to its graph. Misuse raises a `PlacementError` or
`FederatedTypeError` that names the expected and the given type.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core import _ir
from fedjit.core._computations import (Computation, FederatedComputation,
                                       JaxComputation, check_argument)
from fedjit.core._errors import FederatedTypeError, PlacementError
from fedjit.core._placements import CLIENTS, SERVER, Placement
from fedjit.core._sequence import Sequence
from fedjit.core._types import (FederatedType, SequenceType, StructType,
                                TensorType, Type, check_no_placement_in)

__all__ = [
    "federated_value", "federated_broadcast", "federated_map", "federated_mean",
    "federated_sum", "federated_zip", "federated_aggregate",
    "federated_secure_sum", "sequence_reduce", "sequence_map", "sequence_sum",
]


def _builder(name: str) -> _ir.Builder:
  b = _ir.current_builder()
  if b is None:
    raise RuntimeError(
        f"fedjit.{name} can only be used inside a @fedjit.federated_computation; "
        f"it was called from ordinary Python code.")
  return b


def _placed(value: _ir.FederatedValue, name: str, placement: Placement | None = None,
            what: str = "value") -> FederatedType:
  t = value.type
  if not isinstance(t, FederatedType):
    expected = f"T@{placement}" if placement == SERVER else (
        f"{{T}}@{placement}" if placement else "a federated value ({T}@CLIENTS or T@SERVER)")
    raise PlacementError(
        f"fedjit.{name} expects its {what} to be {expected}, but was given the "
        f"unplaced type {t}. Place it first, e.g. with fedjit.federated_value(x, "
        f"fedjit.{placement or 'CLIENTS'}).")
  if placement is not None and t.placement != placement:
    hint = {
        ("federated_mean", SERVER): "Values at SERVER are already aggregated; use "
        "the value directly, or fedjit.federated_broadcast it to the clients first.",
        ("federated_broadcast", CLIENTS): "The value is already at CLIENTS.",
    }.get((name, t.placement), f"Move it to {placement} first.")
    raise PlacementError(
        f"fedjit.{name} expects its {what} to be placed at {placement} "
        f"({'{T}@CLIENTS' if placement == CLIENTS else 'T@SERVER'}), but was given "
        f"{t}. {hint}")
  return t


def _as_computation(fn: Any, name: str) -> Computation:
  if isinstance(fn, Computation):
    return fn
  if callable(fn):
    return JaxComputation(fn, None)
  raise TypeError(f"fedjit.{name} expects a jax_computation (or a Python function "
                  f"of JAX code), got {fn!r}.")


def federated_value(value: Any, placement: Placement) -> _ir.FederatedValue:
  """Places an unplaced value at `placement`, the same for every member.

  Returns `T@SERVER`, or `T@CLIENTS` (all clients hold the same value). At
  CLIENTS the number of clients comes from the computation's `{T}@CLIENTS`
  arguments; without any, the value can still be returned, mapped and
  averaged, but `federated_sum` and the like raise (they need the count).

  Example:
    >>> @fedjit.federated_computation
    ... def initialize_fn():
    ...   return fedjit.federated_value(server_init(), fedjit.SERVER)
  """
  b = _builder("federated_value")
  if not isinstance(placement, Placement):
    raise TypeError(f"fedjit.federated_value expects a placement (fedjit.SERVER or "
                    f"fedjit.CLIENTS) as its second argument, got {placement!r}.")
  v = b.value(value, "value to place")
  if not check_no_placement_in(v.type):
    raise PlacementError(f"fedjit.federated_value expects an unplaced value, but was "
                         f"given {v.type}.")
  return b.add("intrinsic", [v.index], FederatedType(v.type, placement, True),
               name="federated_value")


def federated_broadcast(value: _ir.FederatedValue) -> _ir.FederatedValue:
  """Sends a SERVER value to every client: `T@SERVER -> T@CLIENTS`.

  Example:
    >>> server_weights_at_client = fedjit.federated_broadcast(server_weights)
  """
  b = _builder("federated_broadcast")
  v = b.value(value, "value to broadcast")
  t = _placed(v, "federated_broadcast", SERVER)
  return b.add("intrinsic", [v.index], FederatedType(t.member, CLIENTS, True),
               name="federated_broadcast")


def federated_zip(value: Any) -> _ir.FederatedValue:
  """Turns a structure of federated values into a federated structure.

  `<{A}@CLIENTS,{B}@CLIENTS> -> {<A,B>}@CLIENTS` (likewise at SERVER); all
  values must share a placement. The result is all-equal only if every
  input is.

  Example:
    >>> pairs = fedjit.federated_zip((client_data, weights_at_clients))
  """
  b = _builder("federated_zip")
  v = b.value(value, "structure to zip")
  return _zip(b, v, "federated_zip")


def _zip(b: _ir.Builder, v: _ir.FederatedValue, name: str) -> _ir.FederatedValue:
  if isinstance(v.type, FederatedType):
    return v
  if not isinstance(v.type, StructType) or len(v.type) == 0:
    raise PlacementError(f"fedjit.{name} expects a federated value or a structure of "
                         f"federated values, but was given {v.type}.")
  placements = set()
  for n, ft in v.type.items():
    if not isinstance(ft, FederatedType):
      raise PlacementError(
          f"fedjit.{name} expects every field to be a federated value, but field "
          f"{n or ''} has the unplaced type {ft} (in {v.type}). Place it with "
          f"fedjit.federated_value or fedjit.federated_broadcast first.")
    placements.add(ft.placement)
  if len(placements) > 1:
    raise PlacementError(
        f"fedjit.{name} expects all values at the same placement, but was given "
        f"{v.type}. Broadcast SERVER values to the clients first with "
        f"fedjit.federated_broadcast.")
  members = StructType([(n, ft.member) for n, ft in v.type.items()],
                       container=v.type.container)
  all_equal = all(ft.all_equal for ft in v.type.types())
  return b.add("intrinsic", [v.index], FederatedType(members, placements.pop(), all_equal),
               name="federated_zip")


def federated_map(fn: Any, arg: Any) -> _ir.FederatedValue:
  """Applies a jax computation to every member of a federated value.

  `(T -> U, {T}@CLIENTS) -> {U}@CLIENTS`, and `(T -> U, T@SERVER) -> U@SERVER`.
  A tuple of federated values is zipped first, and its fields are passed to
  `fn` as separate arguments when `fn` has several parameters.

  Args:
    fn: a `jax_computation`, or a plain Python function of JAX code (its
      types are inferred from the argument).
    arg: a federated value, or a tuple of federated values at one placement.

  Example:
    >>> client_weights = fedjit.federated_map(
    ...     client_update_fn, (federated_dataset, server_weights_at_client))
  """
  b = _builder("federated_map")
  comp = _as_computation(fn, "federated_map")
  if isinstance(comp, FederatedComputation):
    raise TypeError(
        f"fedjit.federated_map applies a jax_computation, but '{comp.name}' is a "
        f"federated_computation; call it directly instead.")
  v = _zip(b, b.value(arg, f"argument of federated_map({comp.name})"), "federated_map")
  t = v.type
  comp = comp.concretize(t.member)
  check_argument(comp, t.member,
                 f"fedjit.federated_map({comp.name}, ...): '{comp.name}'")
  result = comp.type_signature.result
  out_type = FederatedType(result, t.placement, t.placement == SERVER)
  return b.add("intrinsic", [v.index], out_type, name="federated_map", fn=comp)


def _check_float(t: FederatedType, name: str) -> None:
  leaves = _tensor_leaves(t.member)
  if leaves is None or not leaves or not all(
      np.issubdtype(l.dtype, np.floating) for l in leaves):
    raise FederatedTypeError(
        f"fedjit.{name} averages floating-point values, but was given {t}. Cast "
        f"the values to float32 in a jax_computation first.")


def _tensor_leaves(t: Type):
  if isinstance(t, TensorType):
    return [t]
  if isinstance(t, StructType):
    out = []
    for e in t.types():
      sub = _tensor_leaves(e)
      if sub is None:
        return None
      out.extend(sub)
    return out
  return None


def federated_mean(value: _ir.FederatedValue, weight: Any = None) -> _ir.FederatedValue:
  """The (weighted) mean of client values, at the server.

  `{T}@CLIENTS -> T@SERVER`, computing Σ wᵢvᵢ / Σ wᵢ (wᵢ = 1 without weights).

  Args:
    value: a `{T}@CLIENTS` value of floats (or a structure of them).
    weight: optional `{float32}@CLIENTS` weights, one per client.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
    ... def get_average_temperature(client_temperatures):
    ...   return fedjit.federated_mean(client_temperatures)
  """
  b = _builder("federated_mean")
  v = b.value(value, "value to average")
  t = _placed(v, "federated_mean", CLIENTS)
  _check_float(t, "federated_mean")
  args = [v.index]
  if weight is not None:
    w = b.value(weight, "weight")
    wt = _placed(w, "federated_mean", CLIENTS, "weight")
    if not (isinstance(wt.member, TensorType) and wt.member.shape == () and
            np.issubdtype(wt.member.dtype, np.number)):
      raise FederatedTypeError(
          f"fedjit.federated_mean expects one scalar weight per client "
          f"({{float32}}@CLIENTS), but was given {wt}.")
    args.append(w.index)
  return b.add("intrinsic", args, FederatedType(t.member, SERVER, True),
               name="federated_mean")


def federated_sum(value: _ir.FederatedValue) -> _ir.FederatedValue:
  """The sum of client values, at the server: `{T}@CLIENTS -> T@SERVER`.

  Example:
    >>> total = fedjit.federated_sum(client_counts)
  """
  b = _builder("federated_sum")
  v = b.value(value, "value to sum")
  t = _placed(v, "federated_sum", CLIENTS)
  if _tensor_leaves(t.member) is None:
    raise FederatedTypeError(f"fedjit.federated_sum adds tensors, but was given {t}.")
  return b.add("intrinsic", [v.index], FederatedType(t.member, SERVER, True),
               name="federated_sum")


def federated_secure_sum(value: _ir.FederatedValue, bitwidth: int) -> _ir.FederatedValue:
  """Sum of integer client values modulo 2**bitwidth, at the server.

  Equals `federated_sum` whenever the sum stays below 2**bitwidth. Here it
  is computed in the clear; the secure aggregation protocol, in which the
  server learns only the sum, comes with the deployment runtime.

  Args:
    value: `{T}@CLIENTS` with integer tensors.
    bitwidth: an int in [1, 32].

  Example:
    >>> total = fedjit.federated_secure_sum(client_counts, bitwidth=16)
  """
  b = _builder("federated_secure_sum")
  v = b.value(value, "value to sum")
  t = _placed(v, "federated_secure_sum", CLIENTS)
  leaves = _tensor_leaves(t.member)
  if leaves is None or not all(np.issubdtype(l.dtype, np.integer) for l in leaves):
    raise FederatedTypeError(
        f"fedjit.federated_secure_sum adds integers, but was given {t}. Quantize "
        f"the values to int32 in a jax_computation first.")
  if not isinstance(bitwidth, (int, np.integer)) or not 1 <= int(bitwidth) <= 32:
    raise ValueError(f"fedjit.federated_secure_sum expects bitwidth to be an int in "
                     f"[1, 32], got {bitwidth!r}.")
  return b.add("intrinsic", [v.index], FederatedType(t.member, SERVER, True),
               name="federated_secure_sum", bitwidth=int(bitwidth))


def federated_aggregate(value: _ir.FederatedValue, zero: Any, accumulate: Any,
                        merge: Any, report: Any) -> _ir.FederatedValue:
  """A general aggregation of client values into a server value.

  As in TFF, groups of clients are accumulated separately, each starting
  from `zero` (an accumulator of type A) and folding in its clients' values
  with `accumulate(A, T) -> A`; the partial accumulators combine with
  `merge(A, A) -> A`, and `report(A) -> R` gives the result `R@SERVER`. Both
  backends use two groups, the first ceil(n/2) clients and the rest, so
  `merge` must combine partial results correctly (with `zero` as its
  identity); how clients are grouped may change, so results should not
  depend on it.

  Example:
    >>> total = fedjit.federated_aggregate(values, np.float32(0), add, add, identity)
  """
  b = _builder("federated_aggregate")
  v = b.value(value, "value to aggregate")
  t = _placed(v, "federated_aggregate", CLIENTS)
  z = b.value(zero, "zero")
  if not check_no_placement_in(z.type):
    raise PlacementError(f"fedjit.federated_aggregate expects an unplaced zero, but "
                         f"was given {z.type}.")
  acc_t = z.type
  acc = _as_computation(accumulate, "federated_aggregate").concretize(
      StructType([acc_t, t.member]))
  check_argument(acc, StructType([acc_t, t.member]), "federated_aggregate's accumulate")
  _check_result(acc, acc_t, "accumulate")
  mrg = _as_computation(merge, "federated_aggregate").concretize(StructType([acc_t, acc_t]))
  check_argument(mrg, StructType([acc_t, acc_t]), "federated_aggregate's merge")
  _check_result(mrg, acc_t, "merge")
  rep = _as_computation(report, "federated_aggregate").concretize(acc_t)
  check_argument(rep, acc_t, "federated_aggregate's report")
  return b.add("intrinsic", [v.index, z.index],
               FederatedType(rep.type_signature.result, SERVER, True),
               name="federated_aggregate", accumulate=acc, merge=mrg, report=rep)


def _check_result(comp, expected: Type, what: str) -> None:
  got = comp.type_signature.result
  if not expected.is_assignable_from(got):
    raise FederatedTypeError(
        f"federated_aggregate's {what} ('{comp.name}') must return the accumulator "
        f"type {expected} (the type of zero), but returns {got}.")


# ----------------------------------------------------------------- sequences


def _sequence_op(name: str, value: Any, body: Callable, extra: Any = None):
  """Runs `body(seq, extra)` on a Sequence directly, or adds it to the graph.

  On a placed sequence it becomes a federated_map of a generated jax
  computation, so it runs wherever the sequence lives.
  """
  if isinstance(value, Sequence):
    return body(value, extra)
  b = _builder(name)
  v = b.value(value, "sequence")
  t = v.type.member if isinstance(v.type, FederatedType) else v.type
  if not isinstance(t, SequenceType):
    raise FederatedTypeError(f"fedjit.{name} expects a sequence (T*), or a federated "
                             f"sequence ({{T*}}@CLIENTS), but was given {v.type}.")
  if extra is None:
    comp = JaxComputation(lambda s: body(s, None), [t], name=name, param_names=["sequence"])
    arg = v
  else:
    e = b.value(extra, "initial value")
    if not check_no_placement_in(e.type):
      raise PlacementError(f"fedjit.{name} expects an unplaced initial value, but was "
                           f"given {e.type}.")
    comp = JaxComputation(lambda s, x: body(s, x), [t, e.type], name=name,
                          param_names=["sequence", "initial"])
    if isinstance(v.type, FederatedType):
      placed = federated_value(e, v.type.placement)
      arg = (v, placed)
    else:
      return comp(v, e)
  if isinstance(v.type, FederatedType):
    return federated_map(comp, arg)
  return comp(v)


def sequence_reduce(value: Any, zero: Any, op: Any, *, with_mask: bool = False) -> Any:
  """Folds `op(accumulator, element) -> accumulator` over a sequence.

  Works on a `Sequence` inside a jax computation, and on (placed) sequence
  values inside a federated computation (`{T*}@CLIENTS -> {A}@CLIENTS`).

  Args:
    value: a sequence, or a federated sequence.
    zero: the initial accumulator (an unplaced value).
    op: `op(accumulator, element) -> accumulator`; with `with_mask=True`,
      `op(accumulator, element, mask) -> accumulator`.
    with_mask: pass `op` the mask of real examples (see `Sequence.reduce`):
      for batches, a float32 vector with 1.0 for each real row and 0.0 for
      padding. The vectorized backend pads a smaller last batch to the full
      batch size, so an `op` that ignores the mask sees those padded rows;
      one that weights rows by the mask gets the reference result in every
      case. On the reference backend the mask is all ones.

  Example:
    >>> total = fedjit.sequence_reduce(client_data, np.float32(0), add)
    >>> examples = fedjit.sequence_reduce(
    ...     client_batches, np.float32(0), lambda n, batch, mask: n + jnp.sum(mask),
    ...     with_mask=True)
  """
  fn = op.fn if isinstance(op, JaxComputation) else op
  return _sequence_op("sequence_reduce", value,
                      lambda s, z: s.reduce(z, fn, with_mask=with_mask), zero)


def sequence_map(fn: Any, value: Any, *, with_mask: bool = False) -> Any:
  """Applies `fn` to every element of a sequence, giving a new sequence.

  For batches, `fn` must act row by row (keep the batch axis), or take the
  mask of real rows (`with_mask=True`: `fn(batch, mask)`), since the
  vectorized backend pads smaller batches.

  Example:
    >>> scaled = fedjit.sequence_map(lambda batch: batch * 2.0, client_data)
    >>> sums = fedjit.sequence_map(lambda b, m: jnp.sum(b * m[:, None]), client_data,
    ...                            with_mask=True)
  """
  f = fn.fn if isinstance(fn, JaxComputation) else fn
  return _sequence_op("sequence_map", value, lambda s, _: s.map(f, with_mask=with_mask))


def sequence_sum(value: Any) -> Any:
  """The sum of a sequence's elements (elements of a fully known shape).

  Example:
    >>> total = fedjit.sequence_sum(client_values)   # {int32*}@CLIENTS -> {int32}@CLIENTS
  """
  return _sequence_op("sequence_sum", value, lambda s, _: s.sum())
