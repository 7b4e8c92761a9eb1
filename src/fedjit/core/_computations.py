"""Computations: `jax_computation` (no placements) and `federated_computation`.

A jax computation wraps ordinary JAX code and gives it a type signature. A
federated computation is traced once, with symbolic values, into a typed
graph of intrinsic calls and jax computations; backends run that graph.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from typing import Any, Callable

import jax
from jax import export as jax_export
import numpy as np

from fedjit.core import _ir
from fedjit._tracebacks import api_boundary
from fedjit.core._function_utils import (declared_parameter_types, fn_name, pack_call_args,
                                         python_parameters)
from fedjit.core._errors import (FederatedOperationError, FederatedTypeError,
                                 FederatedValueError, PlacementError, add_context)
from fedjit.core._context import get_backend
from fedjit.core._sequence import PaddedSequence, Sequence, abstract_value
from fedjit.core._types import (FederatedType, FunctionType, SequenceType,
                                StructType, TensorType, Type,
                                check_concrete, check_no_placement_in, infer_type,
                                struct_fields, to_type)

# JAX's errors for Python control flow or conversions on traced values.
_TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerIntegerConversionError,
                  jax.errors.UnexpectedTracerError)

__all__ = [
    "Computation", "JaxComputation", "FederatedComputation", "jax_computation",
    "federated_computation", "invoke", "executing", "ComputationReturnedNoneError",
    "PolymorphicFederatedComputation", "argument_what", "execute_python_call", "param_types",
]


class ComputationReturnedNoneError(FederatedValueError):
  """A federated computation's Python function returned None (TFF's
  `ComputationReturnedNoneError`; also a ValueError, as there)."""


ComputationReturnedNoneError.__module__ = "fedjit"

# True while a backend runs a computation: nested jax computation calls then
# run their Python function directly.
_EXECUTING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fedjit_executing", default=False)


class executing:
  """Context manager marking that a backend is running user code.

  Public as `fedjit.core.executing`. A backend's `run` evaluates a graph (or calls
  a `jax_computation`'s function) inside it, so that jax computations called
  from the running code run their Python function instead of going back to
  the backend.

  Example:
    >>> with fedjit.core.executing():
    ...   out = fedjit.core.evaluate(comp.graph, params, ops)
  """

  def __enter__(self):
    self._token = _EXECUTING.set(True)

  def __exit__(self, *exc):
    _EXECUTING.reset(self._token)


class Computation:
  """Base class: a typed, callable computation."""

  name: str

  @property
  def type_signature(self) -> FunctionType:
    """The computation's `FunctionType`: `(parameter -> result)`.

    Example:
      >>> str(get_average_temperature.type_signature)
      '({float32}@CLIENTS -> float32@SERVER)'
      >>> str(get_average_temperature.type_signature.result)
      'float32@SERVER'
    """
    raise NotImplementedError

  def __repr__(self) -> str:
    try:
      sig = str(self.type_signature)
    except Exception:
      sig = "(polymorphic)"
    return f"<{type(self).__name__} {self.name}: {sig}>"


_WIDE_DTYPES = (np.dtype(np.int64), np.dtype(np.uint64), np.dtype(np.float64),
                np.dtype(np.complex128))


def _tensor_types(t: Type | None) -> list[TensorType]:
  """Every tensor type inside `t` (through placements, structures, sequences)."""
  if t is None:
    return []
  if isinstance(t, TensorType):
    return [t]
  if isinstance(t, FederatedType):
    return _tensor_types(t.member)
  if isinstance(t, SequenceType):
    return _tensor_types(t.element)
  if isinstance(t, FunctionType):
    return _tensor_types(t.parameter) + _tensor_types(t.result)
  return [leaf for e in t.types() for leaf in _tensor_types(e)]


def check_64_bit(fn_name: str, types: list[Type]) -> None:
  """Raises if a declared type is 64-bit while JAX's 64-bit mode is off.

  JAX would otherwise compute in 32 bits without a word (an int64 sum of
  2**40 and 1 would give 1).
  """
  if jax.config.jax_enable_x64:
    return
  for t in types:
    wide = sorted({l.dtype.name for l in _tensor_types(t) if l.dtype in _WIDE_DTYPES})
    if wide:
      raise FederatedTypeError(
          f"'{fn_name}' declares the type {t}, which holds 64-bit values "
          f"({', '.join(wide)}), but JAX's 64-bit mode is off, so JAX would "
          f"silently compute in 32 bits (an int64 sum of 2**40 and 1 would give 1). "
          f"Enable 64-bit mode before declaring the computation, with "
          f"jax.config.update('jax_enable_x64', True) at the start of the program "
          f"(or the environment variable JAX_ENABLE_X64=1), or declare 32-bit "
          f"types (np.float32, np.int32).")


def _param_types(name: str, names: list[str], types: tuple) -> list[Type]:
  """One type per Python parameter, from the decorator's arguments."""
  types = [to_type(t) for t in types]
  for t in types:
    check_concrete(t, name)
  check_64_bit(name, types)
  return declared_parameter_types(name, names, types)


def _parameter_type(names: list[str], types: list[Type]) -> Type | None:
  if not types:
    return None
  if len(types) == 1:
    return types[0]
  return StructType(list(zip(names, types)))


def _symbolic_abstract(types: list[Type]) -> list[Any]:
  """Abstract arguments with symbolic sizes for every `?` dimension."""
  names: list[str] = []

  def collector(i):
    counter = [0]

    def dims(key):
      if key in ("n", "b", "lead"):
        name = f"{key}{i}"
      else:
        counter[0] += 1
        name = f"d{i}_{counter[0]}"
      if name not in names:
        names.append(name)
      return name
    return dims

  for i, t in enumerate(types):
    abstract_value(t, collector(i))
  if not names:
    return [abstract_value(t, lambda k: 1) for t in types]
  sym = dict(zip(names, jax_export.symbolic_shape(", ".join(names))))
  out = []
  for i, t in enumerate(types):
    c = collector(i)
    out.append(abstract_value(t, lambda key, c=c: sym[c(key)]))
  return out


def result_type_of(out: Any) -> Type:
  """The fedjit type of an eval_shape result (may contain sequences)."""
  if isinstance(out, PaddedSequence):
    return SequenceType(out.element_type)
  if isinstance(out, Sequence):
    return SequenceType(out.element_type)
  if isinstance(out, (list, tuple, dict)) and not hasattr(out, "shape"):
    if hasattr(out, "_fields"):
      return StructType([(n, result_type_of(v)) for n, v in zip(out._fields, out)],
                        container=type(out))
    if isinstance(out, dict):
      return StructType([(str(k), result_type_of(v)) for k, v in out.items()],
                        container=type(out))
    return StructType([result_type_of(v) for v in out], container=type(out))
  return to_type(out)


class JaxComputation(Computation):
  """A JAX function with a fedjit type signature (no placements).

  Created with `@fedjit.jax_computation(...)`. Calling it from Python runs it
  on the current backend; calling it inside a federated computation adds it
  to the graph (for unplaced values; use `federated_map` for placed ones);
  calling it inside JAX code runs the function directly.
  """

  def __init__(self, fn: Callable, param_types: list[Type] | None,
               name: str | None = None, param_names: list[str] | None = None):
    self.fn = _arrays_out(fn)
    self.name = name or fn_name(fn, "jax_computation")
    self.param_names = (param_names if param_names is not None
                        else python_parameters(fn, declared=param_types is not None))
    self._param_types = param_types
    self._type_signature: FunctionType | None = None
    self._concrete: dict = {}
    self.batchable = True
    functools.update_wrapper(self, fn, updated=())
    if param_types is not None:
      self._type_signature = self._infer_signature(param_types)

  @property
  def polymorphic(self) -> bool:
    """True if declared without parameter types: they are inferred from the
    value it is applied to (see `concretize`).

    Example:
      >>> @fedjit.jax_computation
      ... def double(x):
      ...   return x * 2
      >>> double.polymorphic
      True
    """
    return self._param_types is None

  @property
  def num_params(self) -> int:
    """The number of parameters of the Python function.

    Example:
      >>> @fedjit.jax_computation(np.float32, np.float32)
      ... def add(a, b):
      ...   return a + b
      >>> add.num_params
      2
    """
    return len(self.param_names)

  def _infer_signature(self, param_types: list[Type]) -> FunctionType:
    for t in param_types:
      if not check_no_placement_in(t):
        raise PlacementError(
            f"A jax_computation's parameters cannot be placed, but '{self.name}' "
            f"declares {t}. Declare the member type (for {{T}}@CLIENTS, just T) "
            f"and apply the computation with fedjit.federated_map.")
    abstract = _symbolic_abstract(param_types)
    try:
      out = jax.eval_shape(self.fn, *abstract)
    except FederatedOperationError:
      raise
    except Exception as e:
      args = ", ".join(str(t) for t in param_types) or "no arguments"
      context = (f"While tracing jax_computation '{self.name}' with {args} "
                 f"(unknown '?' sizes are symbolic).")
      if isinstance(e, _TRACER_ERRORS):
        context += (" Inside a jax_computation the arguments are traced JAX values: "
                    "Python `if`, `float()`, `int()` or `np.asarray()` on them fail; "
                    "use jnp.where / jax.lax.cond, and build models (Keras, Flax) "
                    "outside the computation, passing their weights in.")
      add_context(e, context)
      raise
    return FunctionType(_parameter_type(self.param_names, param_types),
                        result_type_of(out))

  @property
  def type_signature(self) -> FunctionType:
    """See `Computation.type_signature`; unknown for a polymorphic computation
    until it is applied (a TypeError says so)."""
    if self._type_signature is None:
      raise TypeError(
          f"jax_computation '{self.name}' was declared without parameter types, so "
          f"its type is known only once it is applied to a value. Declare the "
          f"types, e.g. @fedjit.jax_computation(np.float32).")
    return self._type_signature

  def concretize(self, parameter_type: Type | None) -> "JaxComputation":
    """This computation specialised to an argument type (for polymorphic ones)."""
    if not self.polymorphic:
      return self
    if parameter_type is None:
      types = []
    elif self.num_params > 1:
      if not isinstance(parameter_type, StructType) or len(parameter_type) != self.num_params:
        raise FederatedTypeError(
            f"'{self.name}' takes {self.num_params} parameters; expected a "
            f"structure of {self.num_params} values, got {parameter_type}.")
      types = list(parameter_type.types())
    else:
      types = [parameter_type]
    key = tuple(types)
    if key not in self._concrete:
      # Called without arguments, a function whose parameters all have
      # defaults runs with those defaults.
      self._concrete[key] = JaxComputation(self.fn, types, self.name,
                                           self.param_names if types else [])
    return self._concrete[key]

  def fn_for_argument_type(self, arg_type: Any) -> "JaxComputation":
    """This computation with its parameter of type `arg_type` (TFF's
    `PolymorphicComputation.fn_for_argument_type`); see `concretize`.

    Example:
      >>> @fedjit.jax_computation
      ... def double(x):
      ...   return x * 2
      >>> str(double.fn_for_argument_type(np.int32).type_signature)
      '(int32 -> int32)'
    """
    return self.concretize(None if arg_type is None else to_type(arg_type))

  def invoke(self, arg: Any) -> Any:
    """Calls the Python function on one argument of the parameter type."""
    if self.num_params == 0:
      return self.fn()
    if self.num_params == 1:
      return self.fn(arg)
    return self.fn(*struct_fields(self.type_signature.parameter, arg))

  @api_boundary
  def __call__(self, *args, **kwargs):
    builder = _ir.current_builder()
    if self.polymorphic:
      if kwargs:
        args = _bind(self.name, self.param_names, args, kwargs)
    else:
      args = pack_call_args(self.name, self.type_signature.parameter, self.param_names,
                       args, kwargs)
    if builder is not None and (not args or _ir._contains_value(list(args))):
      return _trace_call(builder, self, args)
    if _EXECUTING.get() or _has_jax_values(args):
      return self.fn(*args)
    return execute_python_call(self, args)


def _as_array(leaf: Any) -> Any:
  if hasattr(leaf, "__jax_array__") and not isinstance(leaf, jax.Array):
    return leaf.__jax_array__()  # a Keras Variable, for one
  return leaf


def _arrays_out(fn: Callable) -> Callable:
  """`fn` whose results that convert to JAX arrays (Keras variables, as in
  `return model.trainable_variables`) are returned as those arrays."""
  if getattr(fn, "_fedjit_arrays_out", False):
    return fn

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    out = fn(*args, **kwargs)
    if any(_as_array(leaf) is not leaf for leaf in jax.tree_util.tree_leaves(out)):
      out = jax.tree_util.tree_map(_as_array, out)  # (sorts dict keys, hence only here)
    return out
  wrapper._fedjit_arrays_out = True
  return wrapper


def _has_jax_values(args) -> bool:
  return any(isinstance(l, (jax.core.Tracer, Sequence)) for l in jax.tree_util.tree_leaves(
      list(args), is_leaf=lambda x: isinstance(x, Sequence)))


def _bind(name: str, names: list[str], args: tuple, kwargs: dict) -> tuple:
  out = list(args)
  for pname in names[len(args):]:
    if pname not in kwargs:
      raise TypeError(f"'{name}' is missing the argument {pname!r}.")
    out.append(kwargs.pop(pname))
  if kwargs:
    raise TypeError(f"'{name}' got unexpected arguments {sorted(kwargs)}; its "
                    f"parameters are {names}.")
  return tuple(out)


def _trace_call(builder: _ir.Builder, comp: JaxComputation, args) -> _ir.FederatedValue:
  """Adds a call of `comp` on unplaced values to the graph being traced."""
  if len(args) != comp.num_params:
    raise TypeError(f"'{comp.name}' takes {comp.num_params} argument(s), got {len(args)}.")
  values = [builder.value(a, f"argument of '{comp.name}'") for a in args]
  for i, v in enumerate(values):
    if not check_no_placement_in(v.type):
      if comp.polymorphic:
        member = v.type.member if isinstance(v.type, FederatedType) else None
        expected = "an unplaced value" + (f" (such as {member})" if member else "")
      else:
        expected = f"the unplaced type {comp._param_types[i]}"
      which = "an argument" if comp.num_params == 1 else f"its argument '{comp.param_names[i]}'"
      raise PlacementError(
          f"'{comp.name}' is a jax_computation and expects {which} of {expected}, "
          f"but was given {v.type}. Apply it to placed values with "
          f"fedjit.federated_map({comp.name}, value), which runs it on each "
          f"member where the value is placed.")
  if not values:
    arg_index, arg_type = [], None
  elif len(values) == 1:
    arg_index, arg_type = [values[0].index], values[0].type
  else:
    st = StructType([(n, v.type) for n, v in zip(comp.param_names, values)])
    s = builder.add("struct", [v.index for v in values], st)
    arg_index, arg_type = [s.index], st
  comp = comp.concretize(arg_type)
  check_argument(comp, arg_type)
  return builder.add("call", arg_index, comp.type_signature.result, fn=comp)


def check_argument(comp: Computation, arg_type: Type | None, what: str = "") -> None:
  """Raises a FederatedTypeError if `arg_type` does not fit comp's parameter."""
  expected = comp.type_signature.parameter
  if expected is None and arg_type is None:
    return
  if expected is None or arg_type is None or not expected.is_assignable_from(arg_type):
    error = PlacementError if _placement_differs(expected, arg_type) else FederatedTypeError
    raise error(
        f"{what or repr(comp.name)} expects an argument of type "
        f"{expected if expected is not None else '(no argument)'}, but was given "
        f"{arg_type if arg_type is not None else 'no argument'}.")


def _placement_differs(expected, given) -> bool:
  if isinstance(expected, FederatedType) != isinstance(given, FederatedType):
    return True
  if isinstance(expected, FederatedType):
    return expected.placement != given.placement or (expected.all_equal and not given.all_equal)
  if isinstance(expected, StructType) and isinstance(given, StructType) and len(expected) == len(given):
    return any(_placement_differs(a, b) for a, b in zip(expected.types(), given.types()))
  return False


@api_boundary
def jax_computation(*types) -> Any:
  """Declares a JAX function as a fedjit computation (without placements).

  Use as `@fedjit.jax_computation(type, ...)` with one type per parameter,
  or bare `@fedjit.jax_computation` (or with empty parentheses) for a function
  with no parameters (its result type is inferred) or whose types are
  inferred when it is applied (polymorphic, traced once per argument type).
  `?` sizes are traced symbolically, so the result type keeps them.

  As in TFF, a computation has one parameter: one struct type whose number
  of elements equals the function's number of parameters is unpacked into
  them (element names, where given, must be the parameter names), and a
  one-parameter function receives the whole value. Parameters with default
  values, `*args` and `**kwargs` are refused when types are declared. The
  function form `fedjit.jax_computation(fn, type, ...)` does the same as the
  decorator.

  A computation with a struct parameter is called with its elements as
  positional and/or keyword arguments, or with the whole struct value.

  Args:
    *types: the parameter types (anything `fedjit.to_type` accepts),
      optionally preceded by the function.

  Returns:
    A `JaxComputation` with a `type_signature` (or, without a function, a
    decorator that makes one).

  Example:
    >>> import numpy as np, fedjit
    >>> @fedjit.jax_computation(np.float32)
    ... def add_half(x):
    ...   return x + 0.5
    >>> str(add_half.type_signature)
    '(float32 -> float32)'
    >>> @fedjit.jax_computation([('a', np.int32), ('b', np.float32)])
    ... def scale(a, b):
    ...   return a * b
    >>> str(scale.type_signature)
    '(<a=int32,b=float32> -> float32)'
    >>> scale(2, 1.5) == scale((2, 1.5)) == scale(b=1.5, a=2) == scale({'a': 2, 'b': 1.5})
    True
    >>> fedjit.jax_computation(lambda x: x + 1, np.int32)(1)
    np.int32(2)
  """
  fn, types = _split_decorator_args(types, "jax_computation")

  @api_boundary
  def decorate(fn):
    _check_callable(fn, "jax_computation")
    if not types:
      names = python_parameters(fn, declared=False)
      return JaxComputation(fn, [] if not names else None)
    name = fn_name(fn, "jax_computation")
    names = python_parameters(fn, declared=True)
    return JaxComputation(fn, _param_types(name, names, types), name)
  return decorate if fn is None else decorate(fn)


def _is_function(x) -> bool:
  """True for a Python function to decorate (not a type spec such as np.int32
  or a namedtuple class, which are callable too)."""
  return callable(x) and not isinstance(x, (Type, type)) and not hasattr(x, "dtype") \
      and not _dtype_like(x)


def _split_decorator_args(args: tuple, decorator: str) -> tuple:
  """(function or None, types) from the decorator's arguments, which are
  either types (`@decorator(np.int32)`), a function (bare `@decorator`), or
  a function then types (`decorator(lambda x: x, np.int32)`), as in TFF.

  The types are checked here, so that `decorator(10)` fails at once.
  """
  fn = None
  if args and _is_function(args[0]):
    fn, args = args[0], args[1:]
  for t in args:
    if _is_function(t):
      raise TypeError(
          f"fedjit.{decorator} takes types, or a function followed by types, but "
          f"was given the function {fn_name(t)!r} after "
          f"{'a function' if fn is not None else 'types'}. Decorate one function: "
          f"@fedjit.{decorator}(np.int32) above def f(x).")
    to_type(t)  # Raises a TypeError saying what a type may be.
  return fn, args


def _check_callable(fn, decorator: str) -> None:
  if not callable(fn):
    raise TypeError(
        f"fedjit.{decorator} decorates a Python function, but was given "
        f"{fn!r} of type {type(fn).__name__}. (Decorating a property's value, "
        f"e.g. obj.prop, passes its value; pass a function or method instead.)")


def _dtype_like(x) -> bool:
  try:
    np.dtype(x)
    return True
  except TypeError:
    return False


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
    return execute_python_call(comp, args)

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


def param_types(comp: Computation) -> list[Type]:
  """The types of the parameters of `comp`, one per Python argument.

  A backend's `run(comp, args)` gets one argument per type, in order.

  Example:
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.CLIENTS), np.int32)
    ... def f(x, n):
    ...   return fedjit.federated_sum(x)
    >>> [str(t) for t in fedjit.core.param_types(f)]
    ['{float32}@CLIENTS', 'int32']
  """
  if isinstance(comp, FederatedComputation):
    return [comp.graph.nodes[i].type for i in comp.graph.params]
  p = comp.type_signature.parameter
  if p is None:
    return []
  if comp.num_params > 1:
    return list(p.types())
  return [p]


def argument_what(comp: Computation, i: int) -> str:
  """How errors name argument `i` of `comp`."""
  names = comp.param_names
  return f"argument '{names[i]}' of '{comp.name}'" if i < len(names) else comp.name


def execute_python_call(comp: Computation, args: tuple) -> Any:
  """Runs `comp` called from Python on the current backend."""
  if isinstance(comp, JaxComputation) and comp.polymorphic:
    try:
      types = [infer_type(a) for a in args]
    except TypeError as e:
      raise FederatedTypeError(
          f"jax_computation '{comp.name}' has no declared types and they cannot be "
          f"inferred from its arguments ({e}). Declare them: "
          f"@fedjit.jax_computation(type, ...).") from None
    ptype = None if not types else (types[0] if len(types) == 1 else StructType(types))
    comp = comp.concretize(ptype)
  n_params = len(param_types(comp))
  if len(args) != n_params:
    raise TypeError(f"'{comp.name}' takes {n_params} argument(s), got {len(args)}.")
  return get_backend().run(comp, args)
