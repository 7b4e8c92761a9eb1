"""Tracebacks that end at the user's line.

An error raised inside fedjit for the user (a type mismatch, a misplaced
value, bad data) would otherwise come with a dozen frames of fedjit's tracing
and execution machinery before the line that caused it. As JAX does, the
outermost fedjit call a user makes (an `api_boundary`) removes fedjit's own
frames from the traceback of any exception passing through it; the user's
frames (their computation bodies, their model code) are kept.

Set the environment variable `FEDJIT_TRACEBACK_FILTERING=off` to see every
frame (for a bug report, or when debugging fedjit itself).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import types
from typing import Callable, TypeVar

__all__ = ["api_boundary", "filtering_enabled", "user_stacklevel"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NOTE = ("fedjit removed its internal frames from this traceback; set "
         "FEDJIT_TRACEBACK_FILTERING=off to see them.")
_state = threading.local()

F = TypeVar("F", bound=Callable)


def filtering_enabled() -> bool:
  """False when `FEDJIT_TRACEBACK_FILTERING` is `off` (or `0`, `false`, `no`).

  Example:
    >>> os.environ["FEDJIT_TRACEBACK_FILTERING"] = "off"
    >>> filtering_enabled()
    False
  """
  value = os.environ.get("FEDJIT_TRACEBACK_FILTERING", "on").strip().lower()
  return value not in ("off", "0", "false", "no")


def _is_fedjit_frame(frame: types.FrameType) -> bool:
  return os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR)


def _filtered(tb: types.TracebackType | None) -> types.TracebackType | None:
  """The traceback without fedjit's frames (a new chain; `tb` is untouched)."""
  kept = []
  while tb is not None:
    if not _is_fedjit_frame(tb.tb_frame):
      kept.append(tb)
    tb = tb.tb_next
  out = None
  for entry in reversed(kept):
    out = types.TracebackType(out, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
  return out


def _filter_exception(e: BaseException) -> None:
  if getattr(e, "_fedjit_filtered", False):
    return
  e.__traceback__ = _filtered(e.__traceback__)
  try:
    e._fedjit_filtered = True
  except AttributeError:  # exceptions without a __dict__
    pass
  if hasattr(e, "add_note"):  # Python 3.11+
    e.add_note(_NOTE)


def api_boundary(fn: F) -> F:
  """Marks `fn` as an entry point: exceptions leaving the outermost such call
  lose fedjit's own frames (see the module docstring).

  Example:
    >>> @api_boundary
    ... def build_something(x):
    ...   return _check(x)   # an error in _check shows the user's call line
  """

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
      return fn(*args, **kwargs)
    except Exception as e:
      if depth == 0 and filtering_enabled():
        _filter_exception(e)
        if sys.version_info < (3, 11):  # a bare raise would restore the old traceback
          raise e.with_traceback(e.__traceback__)
      raise
    finally:
      _state.depth = depth

  return wrapper  # type: ignore[return-value]


def user_stacklevel() -> int:
  """The `stacklevel` for `warnings.warn` that points at the first frame
  outside fedjit (the user's line), counted from the caller of this function.

  Example:
    >>> warnings.warn("check the labels", UserWarning, stacklevel=user_stacklevel())
  """
  frame = sys._getframe(1)
  level = 1
  while frame is not None and _is_fedjit_frame(frame):
    frame = frame.f_back
    level += 1
  return level
