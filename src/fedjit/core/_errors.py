"""Errors raised by the Federated Core.

Every error subclasses a built-in exception so callers can catch it, and its
message says what was expected, what was given, and what to do.
"""

from __future__ import annotations

__all__ = [
    "FederatedTypeError",
    "FederatedValueError",
    "InvalidTypeError",
    "TypeNotAssignableError",
    "TypesNotEquivalentError",
    "PlacementError",
    "FederatedOperationError",
    "ClientComputationError",
    "add_context",
]


class FederatedTypeError(TypeError):
  """A value's type does not match the type a computation declares."""


class FederatedValueError(FederatedTypeError, ValueError):
  """A FederatedTypeError for the cases where TFF raises a ValueError.

  TFF raises ValueError when an argument has the right Python kind but the
  wrong federated kind: a value that is not a computation where a function is
  expected, a computation without a parameter where one is needed, a value
  that is not a structure given to `federated_zip`. This class is both a
  `FederatedTypeError` (fedjit's spelling) and a `ValueError` (TFF's), so code
  ported from TFF that catches `ValueError` keeps working.

  Example:
    >>> try:
    ...   raise FederatedValueError("Expected a computation, got 3.")
    ... except ValueError as e:
    ...   print(type(e).__name__, isinstance(e, TypeError))
    FederatedValueError True
  """


class InvalidTypeError(TypeError, ValueError):
  """A type was built from parts that do not fit together.

  Raised when constructing a type: a federated type or a function type inside
  a `FederatedType`, a federated, function or sequence type inside a
  `SequenceType`, or a `StructType` field whose name is reserved (it would
  hide a method, such as `items`). Both a TypeError (fedjit's earlier
  spelling) and a ValueError (TFF's).

  Example:
    >>> import numpy as np, fedjit
    >>> try:
    ...   fedjit.SequenceType(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
    ... except ValueError as e:
    ...   print(type(e).__name__)
    InvalidTypeError
  """


class TypeNotAssignableError(FederatedTypeError):
  """Raised by `Type.check_assignable_from` (TFF's name).

  Attributes:
    source_type: the type of the values that were to be assigned.
    target_type: the type they were to be assigned to.

  Example:
    >>> import numpy as np, fedjit
    >>> try:
    ...   fedjit.TensorType(np.int32).check_assignable_from(fedjit.TensorType(np.float32))
    ... except fedjit.TypeNotAssignableError as e:
    ...   print(e.source_type, '->', e.target_type)
    float32 -> int32
  """

  def __init__(self, message: str, source_type=None, target_type=None):
    super().__init__(message)
    self.source_type = source_type
    self.target_type = target_type


class TypesNotEquivalentError(FederatedTypeError):
  """Raised by `Type.check_equivalent_to` (TFF's name).

  Attributes:
    first_type, second_type: the two types that are not equivalent.

  Example:
    >>> import numpy as np, fedjit
    >>> try:
    ...   fedjit.TensorType(np.int32).check_equivalent_to(fedjit.TensorType(np.int32, [2]))
    ... except fedjit.TypesNotEquivalentError as e:
    ...   print(e.first_type, e.second_type)
    int32 int32[2]
  """

  def __init__(self, message: str, first_type=None, second_type=None):
    super().__init__(message)
    self.first_type = first_type
    self.second_type = second_type


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
for _cls in (FederatedTypeError, FederatedValueError, InvalidTypeError,
             TypeNotAssignableError, TypesNotEquivalentError, PlacementError,
             FederatedOperationError, ClientComputationError):
  _cls.__module__ = "fedjit"
del _cls
