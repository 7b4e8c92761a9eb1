"""The Backend protocol, and the backend in use: `get_backend()` and `with backend(...)`.

A backend runs computations called from Python. Calling `comp(*args)` checks
the arguments against the computation's parameters (`_computations.py`) and
ends in `get_backend().run(comp, args)`. What a backend must implement:

* `name` (a short string) and `run(comp, args)`: `args` are Python values,
  one per parameter of `comp` (`fedjit.core.param_types(comp)`); `run` returns the
  result as Python values (NumPy arrays, `{T}@CLIENTS` results as lists, one
  member per client). Check and convert arguments so that errors read alike
  on every backend: `fedjit.core.to_reference(t, value, what)` does it for a
  backend that holds a `{T}@CLIENTS` value as a Python list of members, and
  `fedjit.core.from_reference(t, rep)` converts the result back.
* For a `FederatedComputation`: interpret `comp.graph` with
  `fedjit.core.evaluate(graph, params, ops)` (`backends/interpreter.py`), where
  `ops` (a `fedjit.core.Ops`) implements every intrinsic over the backend's own
  representation of placed values, inside `with fedjit.core.executing():` (so that
  jax computations called by the graph run their Python function).
  `fedjit.core.struct_fields` and `fedjit.core.build_container` split and build the
  Python values of structure types. Backends may first rewrite the graph
  with the pure passes of `core/compiler/` (e.g. fusing a client map with
  its aggregation); the rewritten nodes are intrinsics too.
* For a `JaxComputation`: call `comp.fn` on the converted arguments.
* Optionally `prepare(type_spec, value, what, client_ids)`: a value converted
  ahead of the call that will take it (e.g. padded in a background thread
  while the previous round runs), as a `Prepared`. The default converts
  nothing.
* `fedjit.core.register_backend(name, factory)` makes
  `with fedjit.backend(name, **options)` build `factory(**options)`.

A remote backend (CLIENTS values on devices, `federated_map` shipping
`fedjit.serialize`d client programs) is one more `Ops` and `run`, without
touching the interpreter or the other backends: tests/core/test_third_backend.py
is such a third backend ("logging"), written only with these public names,
and it passes the intrinsic tests.

This module depends on nothing else in fedjit: computations call into it,
and the backends (`core/backends/`) implement it.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable

__all__ = ["Backend", "Prepared", "backend", "get_backend", "register_backend"]


class Prepared:
  """A value converted ahead of a call by `Backend.prepare`.

  Pass `value` to the computation in place of the Python value; call
  `release()` (or leave a `with` block) once the call has returned, so the
  backend can reuse the memory it holds.

  Example:
    >>> prepared = fedjit.get_backend().prepare(data_type, cohort, "client data")
    >>> with prepared:
    ...   result = trainer.next(state, prepared.value)
  """

  def __init__(self, value: Any, release: "Callable[[], None] | None" = None):
    self.value = value
    self._release = release

  def release(self) -> None:
    """Gives the backend back what the prepared value holds (idempotent)."""
    release, self._release = self._release, None
    if release is not None:
      release()

  def __enter__(self) -> "Prepared":
    return self

  def __exit__(self, *exc) -> None:
    self.release()


class Backend:
  """Runs computations called from Python (see the module docstring)."""

  name: str

  # `comp` is a `Computation`; not imported here, since computations import
  # this module (dependencies point one way).
  def run(self, comp: Any, args: tuple) -> Any:
    """Runs `comp` on Python arguments, one per parameter; returns the result
    as Python values (`{T}@CLIENTS` results as lists).

    Calling a computation, `comp(*args)`, ends here on the current backend;
    call `run` directly to use a backend without selecting it.

    Example:
      >>> fedjit.ReferenceBackend().run(get_average_temperature, ([68.5, 70.3, 69.8],))
      np.float32(69.53334)
    """
    raise NotImplementedError

  def prepare(self, type_spec: Any, value: Any, what: str = "",
              client_ids: "list | None" = None) -> Prepared:
    """`value` (of fedjit type `type_spec`) converted ahead of a call that
    takes it; errors name a bad client by its id in `client_ids`. The
    default converts nothing: the call checks and converts `value` itself.

    Example:
      >>> prepared = fedjit.get_backend().prepare(data_type, cohort, "client data",
      ...                                         client_ids=chosen_ids)
      >>> with prepared:
      ...   state = trainer.next(state, prepared.value).state
    """
    del type_spec, what, client_ids
    return Prepared(value)


_FACTORIES: dict[str, Callable[..., Backend]] = {}
_DEFAULT: "Backend | None" = None  # set by the vectorized backend's registration
_BACKEND: contextvars.ContextVar[Backend] = contextvars.ContextVar("fedjit_backend")


def register_backend(name: str, factory: Callable[..., Backend],
                     default: "Backend | None" = None) -> None:
  """Makes `with fedjit.backend(name, **options)` use `factory(**options)`.

  Args:
    name: the backend's name, e.g. "vectorized".
    factory: builds the backend from the options given to `backend(...)`.
    default: if given, the backend `get_backend()` returns outside any
      `with fedjit.backend(...)` block.

  Example:
    >>> class LoggingBackend(fedjit.Backend):
    ...   name = "logging"
    ...   def run(self, comp, args): ...   # see the module docstring
    >>> fedjit.core.register_backend("logging", lambda **options: LoggingBackend())
    >>> with fedjit.backend("logging") as b:
    ...   print(b.name)
    logging

  tests/core/test_third_backend.py registers a complete third backend.
  """
  global _DEFAULT
  _FACTORIES[name] = factory
  if default is not None:
    _DEFAULT = default


def get_backend() -> Backend:
  """The backend that runs computations called from Python right now.

  The default is `VectorizedBackend(client_map="auto")`.

  Example:
    >>> fedjit.get_backend()
    VectorizedBackend(client_map='auto', chunk_size=None)
  """
  return _BACKEND.get(_DEFAULT)


@contextlib.contextmanager
def backend(name_or_backend: "str | Backend", **options):
  """Selects the backend for the code inside a `with` block.

  Args:
    name_or_backend: "vectorized", "reference", or a `Backend` instance.
    **options: options of the backend (see `VectorizedBackend`).

  Example:
    >>> with fedjit.backend("reference"):
    ...   print(get_average_temperature([68.5, 70.3, 69.8]))
    69.53334
  """
  if isinstance(name_or_backend, Backend):
    if options:
      raise TypeError("Options are given to the backend's constructor, not here.")
    b = name_or_backend
  elif isinstance(name_or_backend, str) and name_or_backend in _FACTORIES:
    b = _FACTORIES[name_or_backend](**options)
  else:
    names = [repr(n) for n in _FACTORIES]
    expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    raise ValueError(f"Unknown backend {name_or_backend!r}; expected {expected}.")
  token = _BACKEND.set(b)
  try:
    yield b
  finally:
    _BACKEND.reset(token)
