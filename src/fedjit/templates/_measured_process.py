"""`MeasuredProcess`: an iterative process whose `next` also returns a result
and measurements (TFF's `tff.templates.MeasuredProcess`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from fedjit.core import Computation, StructType
from fedjit.templates._errors import TemplateNotMeasuredProcessOutputError
from fedjit.templates._iterative_process import IterativeProcess

__all__ = ["MeasuredProcessOutput", "MeasuredProcess"]


class MeasuredProcessOutput(NamedTuple):
  """What a measured process's `next` returns: the new `state`, the
  `result` of the step, and its `measurements`.

  Example:
    >>> return fedjit.templates.MeasuredProcessOutput(
    ...     state=new_state, result=fedjit.federated_sum(values),
    ...     measurements=fedjit.federated_value((), fedjit.SERVER))
  """
  state: Any
  result: Any
  measurements: Any


def is_measured_process_output(t: Any) -> bool:
  """Whether `t` is the type of a `MeasuredProcessOutput`: a structure
  built with that class (or, when the container is unknown, as after
  deserialization, one whose fields are `state`, `result`, `measurements`)."""
  if not isinstance(t, StructType) or t.names() != MeasuredProcessOutput._fields:
    return False
  return t.container is MeasuredProcessOutput or t.container is None


class MeasuredProcess(IterativeProcess):
  """An iterative process whose `next` returns
  `MeasuredProcessOutput(state, result, measurements)`.

  Args:
    initialize_fn: a computation with no parameters returning the state.
    next_fn: a computation taking the state (and more arguments), returning
      a `MeasuredProcessOutput` whose `state` has the state's type.
    next_is_multi_arg: see `IterativeProcess`.

  Raises:
    TemplateNotMeasuredProcessOutputError: if `next_fn` returns anything
      but a `MeasuredProcessOutput` (a tuple, a dict or another named tuple
      with the same fields does not count, as in TFF).
    (and the errors of `IterativeProcess`)

  Example:
    >>> process = fedjit.templates.MeasuredProcess(initialize_fn, next_fn)
    >>> output = process.next(process.initialize(), values)
    >>> output.state, output.result, output.measurements
  """

  def __init__(self, initialize_fn: Computation, next_fn: Computation,
               next_is_multi_arg: bool | None = None):
    super().__init__(initialize_fn, next_fn, next_is_multi_arg)
    result = next_fn.type_signature.result
    if not is_measured_process_output(result):
      raise TemplateNotMeasuredProcessOutputError(
          f"{type(self).__name__}'s next_fn must return "
          f"fedjit.templates.MeasuredProcessOutput(state, result, measurements), but it "
          f"returns {result}"
          + (f" (built with {result.container.__name__})"
             if isinstance(result, StructType) and result.container is not None else "")
          + ". Return MeasuredProcessOutput(state=..., result=..., measurements=...).")

  @property
  def result_type(self):
    """The type of `next`'s `result`."""
    return self.next.type_signature.result["result"]
