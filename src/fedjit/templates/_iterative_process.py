"""`IterativeProcess`: an `initialize` computation and a `next` computation."""

from __future__ import annotations

from fedjit._tracebacks import api_boundary
from fedjit.core import Computation, FederatedType, StructType, Type
from fedjit.templates._errors import (TemplateInitFnParamNotEmptyError,
                                      TemplateNextFnNumArgsError,
                                      TemplateStateNotAssignableError)

__all__ = ["IterativeProcess", "is_stateful"]


def _is_nonempty_struct(t) -> bool:
  return isinstance(t, StructType) and len(t) > 0


def _infer_state_type(init_result: Type, next_param: Type | None,
                      next_is_multi_arg: bool | None) -> Type:
  """The state type: `next`'s whole parameter or its first one, whichever
  takes what `initialize` returns (TFF's rule); `next_is_multi_arg` says which."""
  if next_param is None:
    raise TemplateNextFnNumArgsError(
        f"next_fn must take the state ({init_result}) as its first (or only) argument, "
        f"but it takes no arguments.")
  whole = next_param.is_assignable_from(init_result)
  first = _is_nonempty_struct(next_param) and next_param[0].is_assignable_from(init_result)
  if next_is_multi_arg is None:
    if whole:
      return next_param
    if first:
      return next_param[0]
    which = "its whole argument or its first argument"
  elif next_is_multi_arg:
    if not _is_nonempty_struct(next_param):
      raise TemplateNextFnNumArgsError(
          f"next_is_multi_arg=True: next_fn must take the state and more arguments, but "
          f"its parameter type is {next_param}.")
    if first:
      return next_param[0]
    which = "its first argument"
  else:
    if whole:
      return next_param
    which = "its whole argument (next_is_multi_arg=False)"
  given = next_param[0] if which == "its first argument" else next_param
  raise TemplateStateNotAssignableError(
      f"initialize_fn returns the state {init_result}, but next_fn cannot take it as "
      f"{which}: next_fn's parameter type is {next_param}"
      + (f" (first argument {given})" if given is not next_param else "")
      + ". Make initialize_fn return the type next_fn declares for the state.")


class IterativeProcess:
  """A stateful process: `state = initialize()`, then `state = next(state, ...)`.

  `next` takes the state as its first (or only) parameter and returns the
  new state, or a structure whose first field is the state. The types are
  checked when the process is built, not halfway through a run.

  Args:
    initialize_fn: a computation with no parameters returning the state.
    next_fn: a computation whose first (or only) parameter takes the state.
    next_is_multi_arg: True if `next_fn` takes the state and more arguments,
      False if only the state; None (default) decides from the types.

  Raises:
    TypeError: if either function is not a fedjit computation.
    TemplateInitFnParamNotEmptyError: if `initialize_fn` takes arguments.
    TemplateStateNotAssignableError: if `next_fn`'s state parameter cannot
      take `initialize_fn`'s result, or `next_fn` does not return the state.
    TemplateNextFnNumArgsError: if `next_fn` takes no arguments, or a single
      one while `next_is_multi_arg=True`.

  Example:
    >>> process = fedjit.templates.IterativeProcess(initialize_fn, next_fn)
    >>> state = process.initialize()
    >>> state = process.next(state, federated_train_data)
  """

  @api_boundary
  def __init__(self, initialize_fn: Computation, next_fn: Computation,
               next_is_multi_arg: bool | None = None):
    for name, fn in (("initialize_fn", initialize_fn), ("next_fn", next_fn)):
      if not isinstance(fn, Computation):
        raise TypeError(f"Expected {name} to be a fedjit.Computation, got {fn!r}; "
                        f"decorate it with @fedjit.federated_computation (or "
                        f"@fedjit.jax_computation).")
    init_t = initialize_fn.type_signature
    if init_t.parameter is not None:
      raise TemplateInitFnParamNotEmptyError(
          f"initialize_fn must take no arguments, but its type is {init_t}.")
    next_t = next_fn.type_signature
    state_t = _infer_state_type(init_t.result, next_t.parameter, next_is_multi_arg)
    result = next_t.result
    if not (state_t.is_assignable_from(result) or (
        _is_nonempty_struct(result) and state_t.is_assignable_from(result[0]))):
      raise TemplateStateNotAssignableError(
          f"next_fn must return the new state ({state_t}), or a structure whose "
          f"first field is the state; it returns {result}.")
    self._initialize_fn = initialize_fn
    self._next_fn = next_fn
    self._state_type = state_t

  @property
  def initialize(self) -> Computation:
    """The computation that returns the initial state."""
    return self._initialize_fn

  @property
  def next(self) -> Computation:
    """The computation that advances the state by one step (one round)."""
    return self._next_fn

  @property
  def state_type(self) -> Type:
    """The type of the state (`next`'s state parameter)."""
    return self._state_type

  def __repr__(self) -> str:
    return (f"IterativeProcess(initialize: {self.initialize.type_signature}, "
            f"next: {self.next.type_signature})")


def _only_structs(t: Type) -> bool:
  return isinstance(t, StructType) and all(_only_structs(e) for e in t.types())


def is_stateful(process: IterativeProcess) -> bool:
  """Whether `process` has state: a state type holding any tensor.

  A state built only of (nested, possibly placed) empty structures, such as
  `<>@SERVER` or `<<>,<<>>>`, carries no values, so the process is
  stateless (TFF's `tff.templates.is_stateful`).

  Args:
    process: an `IterativeProcess` (or any process with a `state_type`).

  Returns:
    True if the state type contains anything besides structures.

  Example:
    >>> fedjit.templates.is_stateful(
    ...     fedjit.learning.aggregators.SumFactory().create(fedjit.TensorType(np.float32)))
    False
  """
  state_type = process.state_type
  if isinstance(state_type, FederatedType):
    state_type = state_type.member
  return not _only_structs(state_type)
