"""Computations: `jax_computation` (no placements) and `federated_computation`.

A jax computation wraps ordinary JAX code and gives it a type signature. A
federated computation is traced once, with symbolic values, into a typed
graph of intrinsic calls and jax computations; backends run that graph.

This module owns federated computations (`federated_computation`,
`FederatedComputation`, `PolymorphicFederatedComputation`); jax computations
live in `_jax_computation`, the base class and the parameter facts backends
read in `_computation_base`, and the declaration checks in `_signatures`. All
are importable from here.

Calling a federated computation from Python (`trainer.next(state, data)`)
packs the arguments into one per parameter and hands them to the current
backend, `get_backend().run(comp, args)` (the protocol is `_context.Backend`;
README "How a round runs" follows the call on).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from fedjit.core import _ir
from fedjit._tracebacks import api_boundary
# The rest of the computations, re-exported: other modules import them from here.
from fedjit.core._computation_base import (  # re-exported
    _EXECUTING, Computation, ComputationReturnedNoneError, _placement_differs,
    argument_what, check_argument, executing, param_types)
from fedjit.core._errors import FederatedOperationError, FederatedTypeError, PlacementError
from fedjit.core._function_utils import fn_name, pack_call_args, python_parameters
from fedjit.core._jax_computation import (  # re-exported
    JaxComputation, _bind, execute_python_call, jax_computation)
from fedjit.core._signatures import (  # re-exported
    _check_callable, _param_types, _split_decorator_args, _symbolic_abstract,
    check_64_bit, result_type_of)
from fedjit.core._types import (FunctionType, StructType, check_no_placement_in, infer_type,
                                to_type)
# Names this module held before the split, kept importable.
from fedjit.core._context import get_backend
from fedjit.core._errors import FederatedValueError, add_context  # noqa: F401
from fedjit.core._function_utils import declared_parameter_types  # noqa: F401
from fedjit.core._jax_computation import (_TRACER_ERRORS, _arrays_out,  # noqa: F401
                                          _as_array, _has_jax_values, _trace_call)
from fedjit.core._sequence import PaddedSequence, Sequence, abstract_value  # noqa: F401
from fedjit.core._signatures import (_WIDE_DTYPES, _dtype_like, _is_function,  # noqa: F401
                                     _parameter_type, _tensor_types)
from fedjit.core._types import (FederatedType, SequenceType, TensorType, Type,  # noqa: F401
                                check_concrete, struct_fields)

__all__ = [
    "Computation", "JaxComputation", "FederatedComputation", "jax_computation",
    "federated_computation", "executing", "ComputationReturnedNoneError",
    "PolymorphicFederatedComputation", "argument_what", "execute_python_call", "param_types",
]


class FederatedComputation(Computation):
  """A traced federated computation: a typed graph run by a backend.

  Created with `@fedjit.federated_computation(...)`. Calling it from Python
  runs the graph on the current backend; calling it inside another federated
  computation inlines it.
  """

  def __init__(self, graph: _ir.Graph, name: str):
    self.graph = graph
    self.name = name
    self._type_signature = FunctionType(graph.parameter_type, graph.result_type)

  @property
  def type_signature(self) -> FunctionType:
    """See `Computation.type_signature`."""
    return self._type_signature

  @property
  def param_names(self) -> list[str]:
    return self.graph.param_names

  @api_boundary
  def __call__(self, *args, **kwargs):
    args = pack_call_args(self.name, self.type_signature.parameter, self.param_names,
                     args, kwargs)
    if len(args) != len(self.graph.params):
      raise TypeError(f"'{self.name}' takes {len(self.graph.params)} argument(s) "
                      f"{self.param_names}, got {len(args)}.")
    builder = _ir.current_builder()
    fpos = self.graph.function_params
    if builder is not None:
      functions = {p: self._function_argument(p, args[p], builder) for p in fpos}
      values = [None if i in functions else builder.value(a, f"argument of '{self.name}'")
                for i, a in enumerate(args)]
      for v, pi, pname in zip(values, self.graph.params, self.param_names):
        if v is None:
          continue
        expected = self.graph.nodes[pi].type
        if not expected.is_assignable_from(v.type):
          error = PlacementError if _placement_differs(expected, v.type) else FederatedTypeError
          raise error(f"'{self.name}' expects {pname} of type {expected}, but was "
                      f"given {v.type}.")
      return builder.inline(self.graph, [None if v is None else v.index for v in values],
                            functions)
    comp = self
    if fpos:
      comp = self._bound({p: args[p] for p in fpos})
      args = tuple(a for i, a in enumerate(args) if i not in fpos)
    # Called from Python: the current backend runs it (`_context.Backend.run`).
    return get_backend().run(comp, args)

  def _function_argument(self, position: int, given: Any, builder=None):
    """The computation (or, while tracing, the outer function parameter's
    reference) bound to the function-typed parameter at `position`."""
    expected = self.graph.nodes[self.graph.params[position]].type
    what = f"'{self.name}' parameter '{self.param_names[position]}'"
    if isinstance(given, _ir.FunctionValue):
      if builder is None or given._builder is not builder:
        raise FederatedOperationError(f"{what}: the function value belongs to another trace.")
      if not expected.is_assignable_from(given.type):
        raise FederatedTypeError(f"{what} expects a function of type {expected}, but "
                                 f"was given {given.type}.")
      return given.ref()
    if isinstance(given, (FederatedComputation, PolymorphicFederatedComputation)):
      raise FederatedTypeError(
          f"{what} has the function type {expected}; pass a fedjit.jax_computation "
          f"(or a Python function of JAX code), not the federated computation "
          f"'{given.name}'.")
    if isinstance(given, JaxComputation):
      comp = given
    elif callable(given) and not isinstance(given, _ir.FederatedValue):
      comp = JaxComputation(given, None)
    else:
      raise FederatedTypeError(f"{what} expects a function of type {expected} (a "
                               f"fedjit.jax_computation), but was given {given!r}.")
    comp = comp.concretize(expected.parameter)
    if not expected.is_assignable_from(comp.type_signature):
      raise FederatedTypeError(f"{what} expects a function of type {expected}, but "
                               f"was given '{comp.name}' of type {comp.type_signature}.")
    return comp

  def _bound(self, given: dict) -> "FederatedComputation":
    """This computation with its function parameters bound to the
    computations in `given` (position -> function): a computation of the
    remaining parameters, cached per function (so compiled once)."""
    cache = self.__dict__.setdefault("_bound_cache", {})
    key = tuple((p, id(f)) for p, f in sorted(given.items()))
    if key not in cache:
      functions = {p: self._function_argument(p, f) for p, f in given.items()}
      graph = _bind_graph(self.graph, functions)
      # The given functions are kept alive with the entry (their ids are the key).
      cache[key] = (FederatedComputation(graph, self.name), tuple(given.values()))
    return cache[key][0]


def _bind_graph(graph: _ir.Graph, functions: dict) -> _ir.Graph:
  """`graph` with function parameters replaced by computations and dropped
  from its parameters."""
  dropped = {graph.params[p] for p in functions}
  new_index: dict[int, int] = {}
  nodes = []
  params, names = [], []
  for i, node in enumerate(graph.nodes):
    if i in dropped:
      continue
    attrs = _ir.bind_functions(node.attrs, functions)
    if node.op == "param":
      attrs = dict(attrs, index=len(params))
    new_index[i] = len(nodes)
    nodes.append(_ir.Node(node.op, tuple(new_index[a] for a in node.args), node.type, attrs))
    if node.op == "param":
      params.append(new_index[i])
  for p, pi in enumerate(graph.params):
    if pi not in dropped:
      names.append(graph.param_names[p])
  if graph.result in dropped:
    raise FederatedTypeError("A federated computation cannot return a function parameter.")
  return _ir.Graph(nodes, params, new_index[graph.result], names)


@api_boundary
def federated_computation(*types) -> Any:
  """Traces a Python function with placed values into a federated computation.

  The function runs once, on symbolic values; the intrinsics it calls
  (`federated_map`, `federated_mean`, ...) build a typed graph, checked as it
  is built. Use `@fedjit.federated_computation(type, ...)` with one type per
  parameter (or one struct type unpacked into the parameters, as for
  `jax_computation`), or bare for a function without parameters. Bare on a
  function with parameters, it gives a `PolymorphicFederatedComputation`,
  traced once per distinct argument type when called. Calls pack their
  arguments as `jax_computation`'s do.

  Args:
    *types: the parameter types (usually `fedjit.FederatedType`s),
      optionally preceded by the function.

  Returns:
    A `FederatedComputation` with a `type_signature` (or, without a
    function, a decorator that makes one).

  Example:
    >>> import numpy as np, fedjit
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS))
    ... def get_average_temperature(client_temperatures):
    ...   return fedjit.federated_mean(client_temperatures)
    >>> str(get_average_temperature.type_signature)
    '({float32}@CLIENTS -> float32@SERVER)'
    >>> get_average_temperature([68.5, 70.3, 69.8])
    np.float32(69.53334)
  """
  fn, types = _split_decorator_args(types, "federated_computation")

  @api_boundary
  def decorate(fn):
    _check_callable(fn, "federated_computation")
    return _trace(fn, types)
  return decorate if fn is None else decorate(fn)


class PolymorphicFederatedComputation(Computation):
  """A federated computation declared without parameter types: traced anew
  for each distinct argument type it is called with (TFF's
  `PolymorphicComputation`).

  Created by a bare `@fedjit.federated_computation` on a function with
  parameters. Called from Python, the argument types are inferred from the
  values (unplaced: give a placed argument through a typed computation);
  called inside another federated computation, they are the values' types.

  Example:
    >>> @fedjit.federated_computation
    ... def pair(x, y):
    ...   return x, y
    >>> pair(1, 2.0)
    (np.int32(1), np.float32(2.0))
    >>> str(pair.fn_for_argument_type(fedjit.to_type([np.int32, np.float32])).type_signature)
    '(<x=int32,y=float32> -> <int32,float32>)'
  """

  def __init__(self, fn: Callable, name: str, param_names: list[str]):
    self.fn = fn
    self.name = name
    self.param_names = param_names
    self._concrete: dict = {}
    functools.update_wrapper(self, fn, updated=())

  polymorphic = True

  @property
  def type_signature(self) -> FunctionType:
    """Unknown until the computation is applied: raises a TypeError."""
    raise TypeError(
        f"federated_computation '{self.name}' was declared without parameter types, "
        f"so its type is known only once it is called (see fn_for_argument_type). "
        f"Declare the types, e.g. @fedjit.federated_computation("
        f"fedjit.FederatedType(np.float32, fedjit.CLIENTS)).")

  def fn_for_argument_type(self, arg_type: Any) -> FederatedComputation:
    """The computation traced for a parameter of type `arg_type` (cached).

    With several Python parameters, `arg_type` is a struct with one element
    per parameter.
    """
    arg_type = None if arg_type is None else to_type(arg_type)
    n = len(self.param_names)
    if n > 1:
      if not isinstance(arg_type, StructType) or len(arg_type) != n:
        raise FederatedTypeError(
            f"'{self.name}' takes {n} parameters ({', '.join(self.param_names)}); "
            f"expected a struct type of {n} elements, got {arg_type}.")
      types = tuple(arg_type.types())
    else:
      types = (arg_type,)
    if types not in self._concrete:
      self._concrete[types] = _trace(self.fn, types)
    return self._concrete[types]

  concretize = fn_for_argument_type

  @api_boundary
  def __call__(self, *args, **kwargs):
    if kwargs:
      args = _bind(self.name, self.param_names, args, kwargs)
    if len(args) != len(self.param_names):
      raise TypeError(f"'{self.name}' takes {len(self.param_names)} argument(s) "
                      f"({', '.join(self.param_names)}), got {len(args)}.")
    builder = _ir.current_builder()
    types = []
    for pname, a in zip(self.param_names, args):
      if builder is not None and (_ir._contains_value(a) or isinstance(a, _ir.FunctionValue)):
        types.append(a.type if isinstance(a, _ir.FunctionValue)
                     else builder.value(a, f"argument of '{self.name}'").type)
        continue
      try:
        types.append(infer_type(a))
      except TypeError as e:
        raise FederatedTypeError(
            f"federated_computation '{self.name}' has no declared types, and the type "
            f"of its argument '{pname}' cannot be inferred ({e}). Declare the types: "
            f"@fedjit.federated_computation(type, ...).") from None
    arg_type = types[0] if len(types) == 1 else StructType(list(zip(self.param_names, types)))
    return self.fn_for_argument_type(arg_type)(*args)


def _trace(fn: Callable, types: tuple) -> FederatedComputation:
  name = fn_name(fn, "federated_computation")
  names = python_parameters(fn, declared=bool(types))
  if names and not types:
    return PolymorphicFederatedComputation(fn, name, names)
  param_types = _param_types(name, names, types)
  for pname, t in zip(names, param_types):
    if isinstance(t, FunctionType) and (
        (t.parameter is not None and not check_no_placement_in(t.parameter))
        or not check_no_placement_in(t.result)):
      raise FederatedTypeError(
          f"federated_computation '{name}' declares the parameter '{pname}' of type "
          f"{t}; function parameters must be unplaced (jax computations), such as "
          f"fedjit.FunctionType(np.int32, np.int32).")
  with _ir.Builder(name) as builder:
    params = [builder.add("param", [], t, index=i, name=n)
              for i, (t, n) in enumerate(zip(param_types, names))]
    try:
      out = fn(*params)
    except (FederatedOperationError, FederatedTypeError):
      raise
    except (TypeError, ValueError) as e:
      value = _ir.find_value_in_traceback(e)
      if value is None:
        raise
      raise _ir._misuse(value, "a JAX/NumPy operation") from e
    if out is None:
      raise ComputationReturnedNoneError(
          f"federated_computation '{name}' returned None; it must return a value "
          f"(a federated value, or a structure of them): add a return statement.")
    result = builder.value(out, f"result of '{name}'")
  graph = _ir.Graph(builder.nodes, [p.index for p in params], result.index, names)
  comp = FederatedComputation(graph, name)
  functools.update_wrapper(comp, fn, updated=())  # __doc__, __name__, __wrapped__
  return comp
