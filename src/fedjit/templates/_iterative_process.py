"""`IterativeProcess`: an `initialize` computation and a `next` computation."""

from __future__ import annotations

from fedjit._tracebacks import api_boundary
from fedjit.core import Computation, FederatedTypeError, FunctionType

__all__ = ["IterativeProcess"]


class IterativeProcess:
  """A stateful process: `state = initialize()`, then `state = next(state, ...)`.

  `next` takes the state as its first parameter and returns the new state
  (or a structure whose first field is the state). The types are checked when
  the process is built, not halfway through a run.

  Args:
    initialize_fn: a computation with no parameters returning the state.
    next_fn: a computation whose first parameter has the state's type.
    next_is_multi_arg: unused; accepted for TFF compatibility.

  Raises:
    FederatedTypeError: if `next`'s state parameter cannot take
      `initialize`'s result, or `next` does not return the state.

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
        raise TypeError(f"IterativeProcess expects {name} to be a fedjit computation "
                        f"(from @fedjit.federated_computation), got {fn!r}.")
    init_t = initialize_fn.type_signature
    if init_t.parameter is not None:
      raise FederatedTypeError(
          f"initialize_fn must take no arguments, but its type is {init_t}.")
    state_t = init_t.result
    next_t = next_fn.type_signature
    param = next_t.parameter
    if param is None:
      raise FederatedTypeError(
          f"next_fn must take the state ({state_t}) as its first argument, but its "
          f"type is {next_t}.")
    n_params = len(getattr(next_fn, "param_names", [])) or 1
    first = param[0] if n_params > 1 else param
    if not first.is_assignable_from(state_t):
      raise FederatedTypeError(
          f"next_fn's first parameter must accept the state that initialize_fn "
          f"returns: expected {first}, but initialize_fn returns {state_t}.")
    result = next_t.result
    out_state = result
    if not first.is_assignable_from(result):
      from fedjit.core import StructType
      if isinstance(result, StructType) and len(result) and first.is_assignable_from(result[0]):
        out_state = result[0]
      else:
        raise FederatedTypeError(
            f"next_fn must return the new state ({first}), or a structure whose "
            f"first field is the state; it returns {result}.")
    self._initialize_fn = initialize_fn
    self._next_fn = next_fn
    self._state_type = out_state

  @property
  def initialize(self) -> Computation:
    """The computation that returns the initial state."""
    return self._initialize_fn

  @property
  def next(self) -> Computation:
    """The computation that advances the state by one step (one round)."""
    return self._next_fn

  @property
  def state_type(self):
    """The type of the state."""
    return self._state_type

  def __repr__(self) -> str:
    return (f"IterativeProcess(initialize: {self.initialize.type_signature}, "
            f"next: {self.next.type_signature})")
