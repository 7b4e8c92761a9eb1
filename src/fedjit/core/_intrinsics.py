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
from fedjit.core import _type_analysis
from fedjit.core._computations import (Computation, FederatedComputation,
                                       JaxComputation, check_argument)
from fedjit.core._errors import FederatedTypeError, FederatedValueError, PlacementError
from fedjit.core._placements import CLIENTS, SERVER, Placement
from fedjit.core._sequence import Sequence
from fedjit.core._types import (FederatedType, FunctionType, SequenceType, StructType,
                                TensorType, Type, check_no_placement_in)

__all__ = [
    "federated_value", "federated_eval", "federated_broadcast", "federated_map",
    "federated_mean", "federated_sum", "federated_min", "federated_max",
    "federated_zip", "federated_aggregate", "federated_select",
    "federated_secure_select", "federated_map_all_equal",
    "federated_secure_sum", "federated_secure_sum_bitwidth",
    "federated_secure_modular_sum", "sequence_reduce", "sequence_map",
    "sequence_sum",
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
  if isinstance(fn, _ir.FunctionValue):
    return fn.ref()
  if isinstance(fn, (Computation, _ir.FunctionRef, _ir.DeferredComputation)):
    return fn
  if isinstance(fn, _ir.FederatedValue):
    raise FederatedTypeError(f"fedjit.{name} expects a function (a jax_computation), "
                             f"but was given a value of type {fn.type}.")
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
  values must share a placement, and nested structures of federated values
  are zipped too (`<{A}@CLIENTS,<{B}@CLIENTS>> -> {<A,<B>>}@CLIENTS`). The
  result is all-equal only if every input is. As in TFF, a single federated
  value (not in a structure) is refused.

  Raises:
    FederatedValueError: `value` is not a structure (also a ValueError).
    PlacementError: its values are at different placements, or unplaced.

  Example:
    >>> pairs = fedjit.federated_zip((client_data, weights_at_clients))
  """
  b = _builder("federated_zip")
  v = b.value(value, "structure to zip")
  if not isinstance(v.type, StructType):
    raise FederatedValueError(
        f"fedjit.federated_zip expects a structure of federated values, such as "
        f"(a, b) with a and b at the same placement, but was given a single value of "
        f"type {v.type}. A single federated value needs no zip: use it directly.")
  return _zip(b, v, "federated_zip")


def _zip(b: _ir.Builder, v: _ir.FederatedValue, name: str) -> _ir.FederatedValue:
  if isinstance(v.type, FederatedType):
    return v
  if not isinstance(v.type, StructType) or len(v.type) == 0:
    raise PlacementError(f"fedjit.{name} expects a federated value or a structure of "
                         f"federated values, but was given {v.type}.")
  for i, (n, ft) in enumerate(v.type.items()):
    nested = isinstance(ft, StructType) and len(ft) and not check_no_placement_in(ft)
    if not (nested or isinstance(ft, FederatedType)):
      raise PlacementError(
          f"fedjit.{name} expects every field to be a federated value, but field "
          f"{n or i} has the unplaced type {ft} (in {v.type}). Place it with "
          f"fedjit.federated_value or fedjit.federated_broadcast first.")
  if any(isinstance(ft, StructType) for ft in v.type.types()):
    # Nested structures of federated values are zipped first.
    fields = [_zip(b, v[i], name) if isinstance(ft, StructType) else v[i]
              for i, ft in enumerate(v.type.types())]
    v = b.add("struct", [f.index for f in fields],
              StructType([(n, f.type) for n, f in zip(v.type.names(), fields)],
                         container=v.type.container))
  placements = {ft.placement for ft in v.type.types()}
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
  v = _zip(b, b.value(arg, "argument of federated_map_all_equal"), "federated_map_all_equal")
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


def _client_value(b: _ir.Builder, value: Any, name: str, what: str) -> _ir.FederatedValue:
  """`value` as one `{T}@CLIENTS` value (a structure of them is zipped)."""
  v = b.value(value, what)
  if isinstance(v.type, StructType) and not check_no_placement_in(v.type):
    v = _zip(b, v, name)
  _placed(v, name, CLIENTS)
  return v


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


def _reason(e: Exception) -> str:
  return str(e).rsplit(": ", 1)[-1].rstrip(".")


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


def federated_select(client_keys: Any, max_key: Any, server_val: Any,
                     select_fn: Any) -> _ir.FederatedValue:
  """Sends each client the values it selects by key from a server value.

  `({int32[N]}@CLIENTS, int32@SERVER, S@SERVER, (<S,int32> -> U)) -> {U*}@CLIENTS`:
  a client with keys `[k₁, …, k_N]` receives the sequence
  `[select_fn(server_val, k₁), …, select_fn(server_val, k_N)]`. Keys must lie
  in `[0, max_key]` (checked when the computation runs).

  Args:
    client_keys: `{int32[N]}@CLIENTS`, a fixed number of keys per client.
    max_key: `int32@SERVER`, the largest key any client may hold.
    server_val: `S@SERVER` (a structure of SERVER values is zipped).
    select_fn: a jax computation of `(S, int32)`, deterministic.

  Raises:
    PlacementError, FederatedTypeError: an argument of the wrong type (both
    TypeErrors).

  Example:
    >>> @fedjit.jax_computation(fedjit.TensorType(np.float32, [4]), np.int32)
    ... def row(table, key):
    ...   return table[key]
    >>> @fedjit.federated_computation(
    ...     fedjit.FederatedType(fedjit.TensorType(np.int32, [2]), fedjit.CLIENTS),
    ...     fedjit.FederatedType(fedjit.TensorType(np.float32, [4]), fedjit.SERVER))
    ... def pick(keys, table):
    ...   max_key = fedjit.federated_value(np.int32(3), fedjit.SERVER)
    ...   return fedjit.federated_select(keys, max_key, table, row)
    >>> pick([[0, 3]], np.array([10., 11., 12., 13.], np.float32))
    [[np.float32(10.0), np.float32(13.0)]]
  """
  name = "federated_select"
  b = _builder(name)
  k = b.value(client_keys, "client_keys")
  kt = _placed(k, name, CLIENTS, "client_keys")
  km = kt.member
  if not (isinstance(km, TensorType) and km.dtype == np.int32 and len(km.shape) == 1
          and km.shape[0] is not None):
    raise FederatedTypeError(
        f"fedjit.federated_select expects client_keys of type {{int32[N]}}@CLIENTS "
        f"(a fixed number N of int32 keys per client), but was given {kt}.")
  m = b.value(max_key, "max_key")
  expected_max = FederatedType(np.int32, SERVER)
  if not expected_max.is_assignable_from(m.type):
    error = PlacementError if not (isinstance(m.type, FederatedType)
                                   and m.type.placement == SERVER) else FederatedTypeError
    raise error(f"fedjit.federated_select expects max_key of type {expected_max}, but "
                f"was given {m.type}.")
  sv = b.value(server_val, "server_val")
  if isinstance(sv.type, StructType) and not check_no_placement_in(sv.type):
    sv = _zip(b, sv, name)
  st = _placed(sv, name, SERVER, "server_val")
  param = StructType([st.member, TensorType(np.int32)])
  comp = _as_computation(select_fn, name)
  if isinstance(comp, FederatedComputation):
    raise FederatedTypeError(f"fedjit.federated_select applies a jax_computation, but "
                             f"'{comp.name}' is a federated_computation.")
  comp = comp.concretize(param)
  p = comp.type_signature.parameter
  if p is None or not p.is_assignable_from(param):
    raise FederatedTypeError(
        f"fedjit.federated_select expects select_fn to take the server value and "
        f"a key, {param}, but '{comp.name}' has the type {comp.type_signature}.")
  result = comp.type_signature.result
  if not check_no_placement_in(result):
    raise FederatedTypeError(f"fedjit.federated_select's select_fn must return tensors, "
                             f"but '{comp.name}' returns {result}.")
  return b.add("intrinsic", [k.index, m.index, sv.index],
               FederatedType(SequenceType(result), CLIENTS), name=name, fn=comp)


def federated_secure_select(client_keys: Any, max_key: Any, server_val: Any,
                            select_fn: Any) -> _ir.FederatedValue:
  """`federated_select` where the server must not learn which keys a client
  selects (TFF's `federated_secure_select`; same types and results).

  Here the values are selected in the clear, as by `federated_select`; the
  private protocol comes with the deployment runtime.

  Example:
    >>> rows = fedjit.federated_secure_select(keys, max_key, table, row)
  """
  return federated_select(client_keys, max_key, server_val, select_fn)


# ---------------------------------------------------------- secure sums


def _secure(name: str, value: Any, bound: Any, what: str) -> _ir.FederatedValue:
  """A secure-sum node: `{T}@CLIENTS` integers and an unplaced integer bound
  (one for all tensors, or a structure matching T)."""
  b = _builder(name)
  v = _client_value(b, value, name, "value to sum")
  t = v.type
  if not _type_analysis.is_structure_of_integers(t.member):
    raise FederatedTypeError(
        f"fedjit.{name} adds integers, but was given {t}. Quantize the values to "
        f"int32 in a jax_computation first.")
  bv = b.value(bound, what)
  if not check_no_placement_in(bv.type):
    raise PlacementError(f"fedjit.{name} expects an unplaced {what}, but was given "
                         f"{bv.type}.")
  if not _type_analysis.is_single_integer_or_matches_structure(bv.type, t.member):
    raise FederatedTypeError(
        f"fedjit.{name} expects {what} to be one integer (for every tensor) or a "
        f"structure of integers matching the value, one per tensor; the value has "
        f"members of type {t.member}, {what} has the type {bv.type}.")
  node = b.nodes[bv.index]
  if node.op == "constant":
    _check_constant_bound(name, what, node.attrs["value"])
  # One scalar bound per tensor of the value, in order (a single integer is
  # used for every tensor, as in TFF).
  leaves = _bound_leaves(bv, t.member)
  flat = b.add("struct", [l.index for l in leaves],
               StructType([l.type for l in leaves], container=tuple))
  return b.add("intrinsic", [v.index, flat.index], FederatedType(t.member, SERVER, True),
               name=name)


def _bound_leaves(bound: _ir.FederatedValue, member: Type) -> list:
  if isinstance(bound.type, TensorType):
    return [bound] * len(_tensor_leaves(member))
  return [l for i, ft in enumerate(member.types()) for l in _bound_leaves(bound[i], ft)]


def _check_constant_bound(name: str, what: str, leaves) -> None:
  for leaf in leaves:
    x = int(np.asarray(leaf).reshape(()))
    if what == "bitwidth" and not 0 <= x <= 62:
      raise FederatedValueError(f"fedjit.{name} expects a bitwidth in [0, 62], got {x}.")
    if what == "modulus" and x < 1:
      raise FederatedValueError(f"fedjit.{name} expects a positive modulus, got {x}.")
    if what == "max_input" and x < 0:
      raise FederatedValueError(f"fedjit.{name} expects a max_input >= 0, got {x}.")


def federated_secure_sum(value: Any, max_input: Any) -> _ir.FederatedValue:
  """Sum of integer client values, each in `[0, max_input]`, at the server.

  `({T}@CLIENTS, M) -> T@SERVER`, the plain sum Σᵢ vᵢ, as in TFF: `max_input`
  is the largest value (inclusive) any input may take; it lets a secure
  aggregation protocol size its messages. A client value outside
  `[0, max_input]` makes the computation fail when it runs (a ValueError
  naming the client). Here the sum is computed in the clear; the protocol,
  in which the server learns only the sum, comes with the deployment
  runtime.

  Args:
    value: `{T}@CLIENTS` with integer tensors (a structure of them).
    max_input: one integer for every tensor of `value`, or a structure of
      integers matching `T` (an unplaced value, such as a Python int).

  Raises:
    PlacementError, FederatedTypeError: wrong placements or types.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_secure_sum(counts, 100)
    >>> total([1, 2, 10])
    np.int32(13)
  """
  return _secure("federated_secure_sum", value, max_input, "max_input")


def federated_secure_sum_bitwidth(value: Any, bitwidth: Any) -> _ir.FederatedValue:
  """Sum of integer client values of at most `bitwidth` bits, at the server.

  As in TFF, the same as `federated_secure_sum(value, 2**bitwidth - 1)`: each
  input must lie in `[0, 2**bitwidth - 1]` (checked when the computation
  runs), and the result is the plain sum (its bit width grows with the
  number of clients). For a sum that wraps around, use
  `federated_secure_modular_sum`.

  Args:
    value: `{T}@CLIENTS` with integer tensors (a structure of them).
    bitwidth: an integer in [0, 62] for every tensor, or a structure of them
      matching `T`.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_secure_sum_bitwidth(counts, 8)
    >>> total([200, 100, 5])
    np.int32(305)
  """
  return _secure("federated_secure_sum_bitwidth", value, bitwidth, "bitwidth")


def federated_secure_modular_sum(value: Any, modulus: Any) -> _ir.FederatedValue:
  """Sum of integer client values modulo `modulus`, at the server.

  `(Σᵢ vᵢ) mod modulus`, in `[0, modulus - 1]`; values outside that range
  count as `vᵢ mod modulus` (TFF's
  `tff.backends.mapreduce.federated_secure_modular_sum`).

  Args:
    value: `{T}@CLIENTS` with integer tensors (a structure of them).
    modulus: a positive integer for every tensor, or a structure of them
      matching `T`.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... def total(counts):
    ...   return fedjit.federated_secure_modular_sum(counts, 5)
    >>> total([1, 2, 10])
    np.int32(3)
  """
  return _secure("federated_secure_modular_sum", value, modulus, "modulus")


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


def _check_function_value(fn: Any, name: str, with_mask: bool) -> None:
  if isinstance(fn, _ir.FunctionValue) and with_mask:
    raise FederatedTypeError(
        f"fedjit.{name}(..., with_mask=True) needs a Python function or jax_computation "
        f"that takes the mask; the function parameter {fn.type} does not.")


def _reduce_type(name: str):
  def result_of(ft: FunctionType, element: Type, zero: Type) -> Type:
    expected = StructType([zero, element])
    if ft.parameter is None or not ft.parameter.is_assignable_from(expected):
      raise FederatedTypeError(
          f"fedjit.{name} expects op to take the accumulator and an element, "
          f"{expected}, but the function has the type {ft}.")
    if not zero.is_assignable_from(ft.result):
      raise FederatedTypeError(
          f"fedjit.{name} expects op to return the accumulator type {zero} (the type "
          f"of zero), but the function has the type {ft}.")
    return zero
  return result_of


def _map_type(ft: FunctionType, element: Type, zero) -> Type:
  if ft.parameter is None or not ft.parameter.is_assignable_from(element):
    raise FederatedTypeError(
        f"fedjit.sequence_map expects a function of the elements, {element}, but the "
        f"function has the type {ft}.")
  return SequenceType(ft.result)


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
