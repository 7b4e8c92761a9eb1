"""Errors of the process templates (TFF's `tff.templates` errors).

Each subclasses `fedjit.FederatedTypeError`, hence `TypeError`, as TFF's do.
"""

from __future__ import annotations

from fedjit.core import FederatedTypeError

__all__ = ["TemplateInitFnParamNotEmptyError", "TemplateStateNotAssignableError",
           "TemplateNextFnNumArgsError", "TemplateNotMeasuredProcessOutputError",
           "TemplatePlacementError"]


class TemplateInitFnParamNotEmptyError(FederatedTypeError):
  """`initialize_fn` takes arguments; it must take none."""


class TemplateStateNotAssignableError(FederatedTypeError):
  """The state `initialize_fn` (or `next_fn`) returns does not fit `next_fn`'s
  state parameter."""


class TemplateNextFnNumArgsError(FederatedTypeError):
  """`next_fn` does not take the number of arguments the template expects."""


class TemplateNotMeasuredProcessOutputError(FederatedTypeError):
  """`next_fn` does not return `MeasuredProcessOutput(state, result, measurements)`."""


class TemplatePlacementError(FederatedTypeError):
  """A template's value is not placed where the template expects it."""
