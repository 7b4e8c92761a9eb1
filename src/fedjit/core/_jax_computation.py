"""`jax_computation` and `JaxComputation`: JAX code with a fedjit type signature
(no placements), and how it runs when called from Python, inside a federated
computation being traced, or inside JAX code.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax

from fedjit.core import _ir
from fedjit._tracebacks import api_boundary
from fedjit.core._computation_base import (_EXECUTING, Computation, check_argument,
                                           param_types)
from fedjit.core._context import get_backend
from fedjit.core._errors import (FederatedOperationError, FederatedTypeError, PlacementError,
                                 add_context)
from fedjit.core._function_utils import fn_name, pack_call_args, python_parameters
from fedjit.core._sequence import Sequence
from fedjit.core._signatures import (_check_callable, _param_types, _parameter_type,
                                     _split_decorator_args, _symbolic_abstract,
                                     result_type_of)
from fedjit.core._types import (FederatedType, FunctionType, StructType, Type,
                                check_no_placement_in, infer_type, struct_fields, to_type)

__all__ = ["JaxComputation", "jax_computation", "execute_python_call"]

# JAX's errors for Python control flow or conversions on traced values.
_TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerIntegerConversionError,
                  jax.errors.UnexpectedTracerError)


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
    self.dp_noise = None  # a compiler.flows.DPNoise when it adds DP noise
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
    self._concrete[key].dp_noise = self.dp_noise
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
