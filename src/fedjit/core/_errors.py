"""Errors raised by the Federated Core.

Every error subclasses a built-in exception so callers can catch it, and its
message says what was expected, what was given, and what to do.
"""

from __future__ import annotations

__all__ = [
    "FederatedTypeError",
    "PlacementError",
    "FederatedOperationError",
    "ClientComputationError",
    "add_context",
]


class FederatedTypeError(TypeError):
  """A value's type does not match the type a computation declares."""


class PlacementError(FederatedTypeError):
  """A value is placed where an intrinsic or computation does not accept it."""


class FederatedOperationError(TypeError):
  """A JAX/NumPy/Python operation was applied to a federated value directly."""


class FederatedAttributeError(FederatedOperationError, AttributeError):
  """An attribute such as `.shape` was read from a federated value.

  Also an AttributeError, so that `hasattr` and `getattr(x, name, default)`
  keep working on federated values.
  """


class ClientComputationError(RuntimeError):
  """An error raised inside one client's computation (reference backend).

  The message names the computation and the client's index; the original
  exception is kept as `__cause__`.
  """

  def __init__(self, message: str, computation: str, client_index: int):
    super().__init__(message)
    self.computation = computation
    self.client_index = client_index


def add_context(error: BaseException, message: str) -> BaseException:
  """Adds `message` to `error` without rebuilding it, so that exception
  classes whose constructors take other arguments (JAX's tracer errors, for
  one) keep their type, message and attributes.

  On Python 3.11+ the message is an exception note (printed below the
  error); on 3.10 it is appended to a string first argument.

  Example:
    >>> try:
    ...   float(traced)
    ... except TypeError as e:
    ...   add_context(e, "While tracing 'f'.")
    ...   raise
  """
  if hasattr(error, "add_note"):
    error.add_note(message)
  elif error.args and isinstance(error.args[0], str):
    error.args = (f"{error.args[0]}\n{message}",) + tuple(error.args[1:])
  return error


# Tracebacks name the public spelling: fedjit.PlacementError, not fedjit.core._errors.
for _cls in (FederatedTypeError, PlacementError, FederatedOperationError,
             ClientComputationError):
  _cls.__module__ = "fedjit"
del _cls
