"""The `Computation` base class, the `executing` flag backends set while they run
user code, and the facts about a computation's parameters that backends and
intrinsics read (`param_types`, `check_argument`, `argument_what`).
"""

from __future__ import annotations

import contextvars

from fedjit.core._errors import FederatedTypeError, FederatedValueError, PlacementError
from fedjit.core._graph import Graph
from fedjit.core._types import FederatedType, FunctionType, StructType, Type

__all__ = ["Computation", "ComputationReturnedNoneError", "executing", "check_argument",
           "param_types", "argument_what"]


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
  graph = getattr(comp, "graph", None)
  if isinstance(graph, Graph):  # a FederatedComputation: one per graph parameter
    return [graph.nodes[i].type for i in graph.params]
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
