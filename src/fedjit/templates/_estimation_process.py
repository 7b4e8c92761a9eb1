"""`EstimationProcess`: an iterative process that also reports an estimate
of its state (TFF's `tff.templates.EstimationProcess`).

Aggregators with adaptive bounds (`clipping_factory`, `zeroing_factory`,
`SecureSumFactory`) take one: `report(state)` is this round's bound, and
`next(state, values@CLIENTS)` updates the state from the clients' values.
"""

from __future__ import annotations

from fedjit._tracebacks import api_boundary
from fedjit.core import Computation, FederatedTypeError, federated_computation
from fedjit.templates._errors import TemplateStateNotAssignableError
from fedjit.templates._iterative_process import IterativeProcess

__all__ = ["EstimationProcess", "EstimateNotAssignableError"]


class EstimateNotAssignableError(FederatedTypeError):
  """The function given to `EstimationProcess.map` cannot take the estimate."""


class EstimationProcess(IterativeProcess):
  """A stateful process with `initialize`, `next` and `report`.

  `initialize()` returns the state, `next(state, ...)` returns the new state
  (only the state, as in TFF), and `report(state)` returns the current
  estimate. All three are federated computations.

  Args:
    initialize_fn: a computation with no parameters returning the state.
    next_fn: a computation taking the state (and more arguments), returning
      the new state.
    report_fn: a computation taking the state, returning the estimate.
    next_is_multi_arg: see `IterativeProcess`.

  Raises:
    TypeError: if report_fn is not a fedjit computation.
    TemplateStateNotAssignableError: if report_fn cannot take the state
      (and the errors of `IterativeProcess`).

  Example:
    >>> @fedjit.federated_computation
    ... def initialize_fn():
    ...   return fedjit.federated_value(1.0, fedjit.SERVER)
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.float32, fedjit.SERVER))
    ... def next_fn(state):
    ...   return state
    >>> process = fedjit.templates.EstimationProcess(initialize_fn, next_fn, next_fn)
    >>> process.report(process.initialize())
    np.float32(1.0)
  """

  @api_boundary
  def __init__(self, initialize_fn: Computation, next_fn: Computation,
               report_fn: Computation, next_is_multi_arg: bool | None = None):
    super().__init__(initialize_fn, next_fn, next_is_multi_arg)
    if not isinstance(report_fn, Computation):
      raise TypeError(f"Expected report_fn to be a fedjit.Computation, got {report_fn!r}; "
                      f"decorate it with @fedjit.federated_computation.")
    param = report_fn.type_signature.parameter
    if param is None or not param.is_assignable_from(self.state_type):
      raise TemplateStateNotAssignableError(
          f"report_fn must take the state ({self.state_type}) as its only argument, but "
          f"its type is {report_fn.type_signature}. Make report_fn take the state "
          f"initialize_fn returns.")
    self._report_fn = report_fn

  @property
  def report(self) -> Computation:
    """The computation that returns the estimate from the state."""
    return self._report_fn

  def map(self, map_fn: Computation) -> "EstimationProcess":
    """A process with the same state and `next` whose `report` is
    `map_fn(self.report(state))` (TFF's `EstimationProcess.map`).

    Args:
      map_fn: a federated computation taking the estimate.

    Raises:
      TypeError: if map_fn is not a fedjit computation.
      EstimateNotAssignableError: if map_fn cannot take the estimate.

    Example:
      >>> double = fedjit.federated_computation(
      ...     lambda x: fedjit.federated_map(twice, x),
      ...     fedjit.FederatedType(np.float32, fedjit.SERVER))
      >>> doubled = process.map(double)
    """
    if not isinstance(map_fn, Computation):
      raise TypeError(f"EstimationProcess.map expects a fedjit.Computation, got {map_fn!r}.")
    estimate = self.report.type_signature.result
    param = map_fn.type_signature.parameter
    if param is None or not param.is_assignable_from(estimate):
      raise EstimateNotAssignableError(
          f"map_fn must take the estimate ({estimate}), but its type is "
          f"{map_fn.type_signature}.")
    report = self.report
    mapped = federated_computation(lambda state: map_fn(report(state)), self.state_type)
    return EstimationProcess(self.initialize, self.next, mapped)

  def __repr__(self) -> str:
    return (f"EstimationProcess(initialize: {self.initialize.type_signature}, "
            f"next: {self.next.type_signature}, report: {self.report.type_signature})")
