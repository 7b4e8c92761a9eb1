"""Intrinsics: the communication and aggregation operators of federated code.

Each intrinsic checks placements and types while a federated computation is
traced, and adds one node to its graph. Misuse raises a `PlacementError` or
`FederatedTypeError` that names the expected and the given type.

The secure sums live in `_secure_sum_intrinsics` and `federated_select` in
`_select_intrinsics`, the shared checks in `_intrinsic_checks`, and
`federated_zip` in `_tracing` (indexing placed structures zips); all are
importable from here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fedjit.core import _ir
from fedjit.core import _type_analysis
from fedjit.core._computations import (Computation, FederatedComputation, JaxComputation,
                                       check_argument)
from fedjit.core._errors import FederatedTypeError, FederatedValueError, PlacementError
from fedjit.core._intrinsic_checks import (_as_computation, _check_float,
                                           _check_function_value, _check_result,
                                           _client_value, _map_type, _placed, _reason,
                                           _reduce_type)
from fedjit.core._placements import CLIENTS, SERVER, Placement
from fedjit.core._secure_sum_intrinsics import (  # re-exported
    federated_secure_modular_sum, federated_secure_sum, federated_secure_sum_bitwidth)
from fedjit.core._select_intrinsics import (  # re-exported
    federated_secure_select, federated_select)
from fedjit.core._sequence import Sequence
from fedjit.core._tracing import builder_for as _builder, zip_federated
from fedjit.core._tracing import federated_zip  # re-exported
from fedjit.core._types import (FederatedType, FunctionType, SequenceType, StructType,
                                TensorType, check_no_placement_in)
# Names this module held before the split, kept importable.
from fedjit.core._intrinsic_checks import _check_constant_bound, _tensor_leaves  # noqa: F401
from fedjit.core._secure_sum_intrinsics import _bound_leaves, _secure  # noqa: F401
from fedjit.core._tracing import zip_federated as _zip  # noqa: F401
from fedjit.core._types import Type  # noqa: F401

__all__ = [
    "federated_value", "federated_eval", "federated_broadcast", "federated_map",
    "federated_mean", "federated_sum", "federated_min", "federated_max",
    "federated_zip", "federated_aggregate", "federated_select",
    "federated_secure_select", "federated_map_all_equal",
    "federated_secure_sum", "federated_secure_sum_bitwidth",
    "federated_secure_modular_sum", "sequence_reduce", "sequence_map",
    "sequence_sum",
]

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
  v = zip_federated(b, b.value(arg, f"argument of federated_map({comp.name})"), "federated_map")
  t = v.type
  comp = comp.concretize(t.member)
  check_argument(comp, t.member,
                 f"fedjit.federated_map({comp.name}, ...): '{comp.name}'")
  result = comp.type_signature.result
  out_type = FederatedType(result, t.placement, t.placement == SERVER)
  return b.add("intrinsic", [v.index], out_type, name="federated_map", fn=comp)


def federated_map_all_equal(fn: Any, arg: Any) -> _ir.FederatedValue:
  """`federated_map` of an all-equal CLIENTS value, keeping it all-equal:
  `(T -> U, T@CLIENTS) -> U@CLIENTS` (a jax computation is deterministic, so
  every client computes the same member).

  Raises:
    PlacementError: `arg` is not an all-equal value at CLIENTS (fedjit
      refuses `{T}@CLIENTS`, whose members may differ; TFF would label the
      result all-equal anyway).

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.SERVER))
    ... def scaled_at_clients(x):
    ...   return fedjit.federated_map_all_equal(add_half, fedjit.federated_broadcast(x))
    >>> str(scaled_at_clients.type_signature)
    '(float32@SERVER -> float32@CLIENTS)'
  """
  b = _builder("federated_map_all_equal")
  v = zip_federated(b, b.value(arg, "argument of federated_map_all_equal"), "federated_map_all_equal")
  t = _placed(v, "federated_map_all_equal", CLIENTS)
  if not t.all_equal:
    raise PlacementError(
        f"fedjit.federated_map_all_equal expects an all-equal value at CLIENTS "
        f"(T@CLIENTS, e.g. from federated_broadcast), but was given {t}, whose "
        f"members may differ. Use fedjit.federated_map.")
  mapped = federated_map(fn, v)
  node = b.nodes[mapped.index]
  b.nodes[mapped.index] = _ir.Node(node.op, node.args, FederatedType(
      node.type.member, CLIENTS, True), node.attrs)
  return _ir.FederatedValue(b, mapped.index, b.nodes[mapped.index].type)


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

  `T` must be sum-compatible: numeric tensors (not bool or str) of a fully
  known shape, or structures of them (see `fedjit.is_sum_compatible`).

  Raises:
    PlacementError: `value` is not placed at CLIENTS.
    SumIncompatibleError: `T` cannot be summed (a `FederatedTypeError`).

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_sum(counts)
    >>> total([1, 2, 3])
    np.int32(6)
  """
  b = _builder("federated_sum")
  v = _client_value(b, value, "federated_sum", "value to sum")
  t = v.type
  try:
    _type_analysis.check_is_sum_compatible(t.member)
  except _type_analysis.SumIncompatibleError as e:
    raise _type_analysis.SumIncompatibleError(t.member, t, _reason(e)) from None
  return b.add("intrinsic", [v.index], FederatedType(t.member, SERVER, True),
               name="federated_sum")


def _min_max(value: Any, name: str) -> _ir.FederatedValue:
  b = _builder(name)
  v = _client_value(b, value, name, "value")
  t = v.type
  if not _type_analysis.is_min_max_compatible(t.member):
    raise FederatedValueError(
        f"fedjit.{name} compares integer or floating-point tensors (or structures "
        f"of them), but was given {t}. Convert the values in a jax_computation first.")
  return b.add("intrinsic", [v.index], FederatedType(t.member, SERVER, True), name=name)


def federated_min(value: Any) -> _ir.FederatedValue:
  """The element-wise minimum of client values, at the server:
  `{T}@CLIENTS -> T@SERVER` (min over clients i of vᵢ, tensor by tensor).

  Raises:
    PlacementError: `value` is not placed at CLIENTS (a TypeError).
    FederatedValueError: `T` holds tensors other than integers and floats
      (also a ValueError, as in TFF).

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def smallest(xs):
    ...   return fedjit.federated_min(xs)
    >>> smallest([3, 1, 2])
    np.int32(1)
  """
  return _min_max(value, "federated_min")


def federated_max(value: Any) -> _ir.FederatedValue:
  """The element-wise maximum of client values, at the server:
  `{T}@CLIENTS -> T@SERVER` (max over clients i of vᵢ, tensor by tensor).

  Raises:
    PlacementError: `value` is not placed at CLIENTS (a TypeError).
    FederatedValueError: `T` holds tensors other than integers and floats
      (also a ValueError, as in TFF).

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def largest(xs):
    ...   return fedjit.federated_max(xs)
    >>> largest([3, 1, 2])
    np.int32(3)
  """
  return _min_max(value, "federated_max")


def federated_eval(fn: Any, placement: Placement) -> _ir.FederatedValue:
  """Runs a computation without parameters at `placement`:
  `(( -> T), SERVER) -> T@SERVER`, `(( -> T), CLIENTS) -> {T}@CLIENTS`.

  At CLIENTS every client evaluates `fn`; a jax computation is deterministic,
  so all clients get the same value, but the type says `{T}@CLIENTS`, as in
  TFF. As with `federated_value`, the number of clients comes from the
  computation's `{T}@CLIENTS` arguments.

  Args:
    fn: a `jax_computation` without parameters (or a Python function of JAX
      code without parameters, or a function parameter of type `( -> T)`).
    placement: `fedjit.SERVER` or `fedjit.CLIENTS`.

  Raises:
    FederatedValueError: `fn` is not a function, or takes parameters (also a
      ValueError, as in TFF).

  Example:
    >>> @fedjit.jax_computation
    ... def initial_weights():
    ...   return jnp.zeros(3)
    >>> @fedjit.federated_computation
    ... def initialize():
    ...   return fedjit.federated_eval(initial_weights, fedjit.SERVER)
    >>> initialize()
    array([0., 0., 0.], dtype=float32)
  """
  b = _builder("federated_eval")
  if not isinstance(placement, Placement):
    raise TypeError(f"fedjit.federated_eval expects a placement (fedjit.SERVER or "
                    f"fedjit.CLIENTS) as its second argument, got {placement!r}.")
  if isinstance(fn, _ir.FederatedValue) and not isinstance(fn, _ir.FunctionValue):
    raise FederatedValueError(f"fedjit.federated_eval expects a function without "
                              f"parameters, but was given a value of type {fn.type}.")
  if not (isinstance(fn, (Computation, _ir.FunctionValue)) or callable(fn)):
    raise FederatedValueError(f"fedjit.federated_eval expects a function without "
                              f"parameters (a jax_computation), but was given {fn!r}.")
  comp = _as_computation(fn, "federated_eval")
  if isinstance(comp, FederatedComputation):
    raise FederatedValueError(
        f"fedjit.federated_eval runs a jax_computation, but '{comp.name}' is a "
        f"federated_computation; call it directly instead.")
  if comp.polymorphic or comp.type_signature.parameter is not None:
    sig = "parameters" if comp.polymorphic else f"the type {comp.type_signature}"
    raise FederatedValueError(
        f"fedjit.federated_eval expects a function without parameters, but "
        f"'{comp.name}' has {sig}. Use fedjit.federated_map to apply a function "
        f"to placed values.")
  result = comp.type_signature.result
  return b.add("intrinsic", [], FederatedType(result, placement), name="federated_eval",
               fn=comp)


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


# ----------------------------------------------------------------- sequences


def _sequence_op(name: str, value: Any, body_for: Callable, fn: Any = None,
                 extra: Any = None, result_of: Callable | None = None):
  """Runs `body_for(f)(seq, extra)` on a Sequence directly, or adds it to the
  graph (`f` is the Python function of `fn`).

  On a placed sequence it becomes a federated_map of a generated jax
  computation, so it runs wherever the sequence lives. A function parameter
  `fn` (a `FunctionValue`) is bound later: the generated computation is then
  deferred, typed by `result_of(fn_type, element_type, zero_type)`.
  """
  plain = fn.fn if isinstance(fn, JaxComputation) else fn
  if isinstance(value, Sequence):
    return body_for(plain)(value, extra)
  b = _builder(name)
  v = b.value(value, "sequence")
  t = v.type.member if isinstance(v.type, FederatedType) else v.type
  if not isinstance(t, SequenceType):
    raise FederatedTypeError(f"fedjit.{name} expects a sequence (T*), or a federated "
                             f"sequence ({{T*}}@CLIENTS), but was given {v.type}.")
  e = placed = None
  if extra is None:
    types, names = [t], ["sequence"]
  else:
    e = b.value(extra, "initial value")
    if (isinstance(e.type, FederatedType) and isinstance(v.type, FederatedType)
        and e.type.placement == v.type.placement):
      placed = e  # TFF passes the zero placed with the sequences
    elif not check_no_placement_in(e.type):
      where = (f" or placed like the sequences ({v.type.placement})"
               if isinstance(v.type, FederatedType) else "")
      raise PlacementError(f"fedjit.{name} expects an unplaced initial value{where}, but "
                           f"was given {e.type}.")
    types = [t, placed.type.member if placed is not None else e.type]
    names = ["sequence", "initial"]

  def make(f):
    body = body_for(f)
    if len(types) == 1:
      return JaxComputation(lambda s: body(s, None), types, name=name, param_names=names)
    return JaxComputation(lambda s, x: body(s, x), types, name=name, param_names=names)

  if isinstance(fn, _ir.FunctionValue):
    ref = fn.ref()
    result = result_of(ref.type_signature, t.element, types[-1] if extra is not None else None)
    param = types[0] if len(types) == 1 else StructType(list(zip(names, types)))
    comp = _ir.DeferredComputation(name, FunctionType(param, result), [ref],
                                   lambda bound: make(bound.fn))
  else:
    comp = make(plain)
  if isinstance(v.type, FederatedType):
    if extra is None:
      return federated_map(comp, v)
    return federated_map(comp, (v, placed if placed is not None else
                                federated_value(e, v.type.placement)))
  if isinstance(comp, JaxComputation):
    return comp(v) if extra is None else comp(v, e)
  arg = v if extra is None else b.add("struct", [v.index, e.index], comp.type_signature.parameter)
  return b.add("call", [arg.index], comp.type_signature.result, fn=comp)


def sequence_reduce(value: Any, zero: Any, op: Any, *, with_mask: bool = False) -> Any:
  """Folds `op(accumulator, element) -> accumulator` over a sequence.

  Works on a `Sequence` inside a jax computation, and on (placed) sequence
  values inside a federated computation (`{T*}@CLIENTS -> {A}@CLIENTS`).

  Args:
    value: a sequence, or a federated sequence.
    zero: the initial accumulator: an unplaced value, or, for a federated
      sequence, a value placed with it (`{A}@CLIENTS`, as TFF code passes it).
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
  _check_function_value(op, "sequence_reduce", with_mask)
  return _sequence_op(
      "sequence_reduce", value,
      lambda f: (lambda s, z: s.reduce(z, f, with_mask=with_mask)), op, zero,
      _reduce_type("sequence_reduce"))


def sequence_map(fn: Any, value: Any, *, with_mask: bool = False) -> Any:
  """Applies `fn` to every element of a sequence, giving a new sequence:
  `(T -> U, T*) -> U*`, `(T -> U, {T*}@CLIENTS) -> {U*}@CLIENTS`.

  For batches, `fn` must act row by row (keep the batch axis), or take the
  mask of real rows (`with_mask=True`: `fn(batch, mask)`), since the
  vectorized backend pads smaller batches.

  Example:
    >>> scaled = fedjit.sequence_map(lambda batch: batch * 2.0, client_data)
    >>> sums = fedjit.sequence_map(lambda b, m: jnp.sum(b * m[:, None]), client_data,
    ...                            with_mask=True)
  """
  _check_function_value(fn, "sequence_map", with_mask)
  return _sequence_op("sequence_map", value,
                      lambda f: (lambda s, _: s.map(f, with_mask=with_mask)), fn,
                      result_of=_map_type)


def sequence_sum(value: Any) -> Any:
  """The sum of a sequence's elements (elements of a fully known shape).

  Example:
    >>> total = fedjit.sequence_sum(client_values)   # {int32*}@CLIENTS -> {int32}@CLIENTS
  """
  return _sequence_op("sequence_sum", value, lambda f: (lambda s, _: s.sum()))
