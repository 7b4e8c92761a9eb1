"""Checking Python values against fedjit types (`normalize`), shared by every backend.

Python side (what users pass and get back):
  * tensors: NumPy arrays, JAX arrays or Python numbers;
  * structures: tuples, lists, dicts, namedtuples;
  * sequences: a list (or any iterable) of elements, e.g. batches;
  * `{T}@CLIENTS`: a list with one member per client, or an array (or pytree
    of arrays) with a leading client axis; results come back as lists;
  * `T@SERVER` and `T@CLIENTS` (all equal): the plain member value.

Each backend converts the checked values to its own representation
(`backends/reference.py`, `backends/vectorized/conversions.py`); results come
back to Python through `to_numpy`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._errors import FederatedTypeError
from fedjit.core._padding import pad_sequences, unpad
from fedjit.core._placements import CLIENTS
from fedjit.core._sequence import PaddedSequence
from fedjit.core._types import (FederatedType, SequenceType, StructType,
                                TensorType, Type, build_container, infer_type,
                                struct_fields, to_type)

__all__ = ["normalize", "describe", "client_what", "placed_members", "to_numpy",
           "check_value", "to_sequence"]


def describe(value: Any) -> str:
  """A short description of a Python value for error messages (its type)."""
  try:
    return str(infer_type(value))
  except TypeError:
    return f"a {type(value).__name__}"


def _mismatch(t: Type, value: Any, what: str = "", hint: str = "") -> FederatedTypeError:
  where = f" for {what}" if what else ""
  return FederatedTypeError(
      f"Expected a value of type {t}{where}, got {describe(value)}. {hint}".rstrip())


def _tensor(t: TensorType, value: Any, xp, what: str):
  if isinstance(value, (Type, FederatedType)):
    raise _mismatch(t, value, what)
  if isinstance(value, jax.core.Tracer) or isinstance(value, jax.Array):
    arr = value
    given = np.dtype(value.dtype)
  else:
    try:
      arr = np.asarray(value)
    except Exception as e:  # ragged lists and the like
      raise _mismatch(t, value, what) from e
    if arr.dtype == object:
      raise _mismatch(t, value, what)
    given = arr.dtype
  if given != t.dtype and not np.can_cast(given, t.dtype, "same_kind"):
    raise FederatedTypeError(
        f"Expected a value of type {t}{' for ' + what if what else ''}, got dtype "
        f"{given.name} with shape {list(np.shape(arr))}, which cannot be safely cast "
        f"to {t.dtype.name}. Convert it first, e.g. with "
        f"np.asarray(x, np.{t.dtype.name}).")
  shape = tuple(np.shape(arr))
  if len(shape) != len(t.shape) or any(
      d is not None and d != s for d, s in zip(t.shape, shape)):
    given_t = TensorType(given, shape)
    raise FederatedTypeError(
        f"Expected a value of type {t}{' for ' + what if what else ''}, got "
        f"{given_t} (shape {list(shape)}).")
  if given != t.dtype:
    arr = xp.asarray(arr, dtype=t.dtype)
  return xp.asarray(arr) if xp is jnp else np.asarray(arr)


def normalize(t: Type, value: Any, xp=np, what: str = "") -> Any:
  """Checks a non-federated `value` against `t`; returns arrays in containers.

  Sequences become lists of normalized elements.
  """
  if isinstance(t, TensorType):
    return _tensor(t, value, xp, what)
  if isinstance(t, StructType):
    try:
      fields = struct_fields(t, value)
    except TypeError as e:
      raise _mismatch(t, value, what, str(e)) from None
    return build_container(t, [normalize(ft, v, xp, what) for ft, v in zip(t.types(), fields)])
  if isinstance(t, SequenceType):
    if isinstance(value, (np.ndarray, jax.Array)) or isinstance(value, (str, bytes)):
      raise _mismatch(t, value, what, "A sequence is passed as a list of elements "
                      "(for example batches), or a fedjit Dataset.")
    elements = _elements_of(value, t, what)
    fast = _fast_element_check(t.element) if xp is np else None
    out = []
    for e in elements:
      checked = fast(e) if fast is not None else None
      out.append(checked if checked is not None else normalize(t.element, e, xp, what))
    return out
  raise _mismatch(t, value, what)


def check_value(type_spec: Any, value: Any, what: str = "") -> Any:
  """Checks a Python value against a (non-federated) fedjit type, as a
  computation checks its argument; returns it normalized.

  The upper layers' seam for checking data before it reaches a computation
  (e.g. one client's dataset, to name the client in the error).

  Args:
    type_spec: a `fedjit.Type` (tensor, struct or sequence; not federated) or
      anything `fedjit.to_type` accepts.
    value: the Python value: arrays or numbers, containers of them, and for a
      sequence a list (or iterable) of elements or a fedjit Dataset.
    what: what `value` is, named in error messages (e.g. "client 'a'").

  Returns:
    `value` as NumPy arrays in the type's containers; a sequence as a list
    of its normalized elements.

  Raises:
    FederatedTypeError: `value` does not match the type (the message names
      `what`, the expected type and what was given).

  Example:
    >>> import numpy as np, fedjit
    >>> fedjit.core.check_value((np.float32, [2]), [1.0, 2.0])
    array([1., 2.], dtype=float32)
    >>> fedjit.core.check_value(np.int32, "a", what="the round")
    Traceback (most recent call last):
    ...
    FederatedTypeError: Expected a value of type int32 for the round, got dtype str32 ...
  """
  t = to_type(type_spec)
  if isinstance(t, FederatedType):
    raise TypeError(
        f"check_value checks a member value, but {t} is a federated type. Check the "
        f"member type ({t.member}) against each member instead.")
  return normalize(t, value, np, what)


def to_sequence(element_type: Any, dataset: Any, what: str = "dataset") -> PaddedSequence:
  """A Python dataset as a `fedjit.Sequence` that plain `jax.jit` code can fold.

  The upper layers' seam for running a sequence computation outside a
  federated round (e.g. centralized evaluation). `dataset` is checked against
  `SequenceType(element_type)` as a computation's argument would be, then its
  elements are stacked and padded the way the vectorized backend pads a
  client's data: a smaller last batch is padded to the common batch size and
  the number of elements is rounded up to a few sizes (so a jitted function is
  reused across datasets of similar length). The result is a JAX pytree; pass
  it to a jitted function and fold it with `reduce(..., with_mask=True)` to
  skip the padded examples exactly.

  Args:
    element_type: the type of one element (a `fedjit.Type` or anything
      `fedjit.to_type` accepts), e.g. a model's input spec.
    dataset: a list (or iterable) of elements, e.g. `(x, y)` batches, or a
      fedjit Dataset.
    what: what `dataset` is, named in error messages.

  Returns:
    A `fedjit.Sequence` (padded, with a mask of the real examples).

  Raises:
    FederatedTypeError: `dataset` is not a sequence of `element_type` (the
      message names `what`, the expected type and what was given).

  Example:
    >>> import jax, numpy as np, fedjit
    >>> ds = fedjit.core.to_sequence(fedjit.TensorType(np.float32, [None]),
    ...                              [np.ones(3, np.float32), np.ones(2, np.float32)])
    >>> total = jax.jit(lambda s: s.reduce(np.float32(0), lambda acc, b, m: acc + (b * m).sum(),
    ...                                   with_mask=True))
    >>> float(total(ds))
    5.0
  """
  element_type = to_type(element_type)
  elements = normalize(SequenceType(element_type), dataset, what=what)
  padded = pad_sequences(element_type, [elements])  # one client: strip its axis
  return jax.tree_util.tree_map(lambda x: x[0], padded)


def _fast_element_check(t: Type):
  """A quick check for the common case of sequence elements that are NumPy
  arrays of exactly the right dtype (in a tuple, list or dict): returns the
  element (in the type's container) or None to take the general path."""
  def leaf_check(lt: TensorType):
    dtype, ndim = lt.dtype, len(lt.shape)
    if ndim and lt.shape[0] is None and None not in lt.shape[1:]:
      tail = tuple(lt.shape[1:])  # a batch of fixed-shape examples: the usual case
      return lambda v: (type(v) is np.ndarray and v.dtype == dtype and v.ndim == ndim
                        and v.shape[1:] == tail)
    return lambda v: (type(v) is np.ndarray and v.dtype == dtype and v.ndim == ndim
                      and all(d is None or d == n for d, n in zip(lt.shape, v.shape)))

  if isinstance(t, TensorType):
    ok = leaf_check(t)
    return lambda e: e if ok(e) else None
  if not isinstance(t, StructType) or not all(isinstance(f, TensorType) for f in t.types()):
    return None
  names, types = t.names(), t.types()
  checks = [leaf_check(lt) for lt in types]
  keyed = all(n is not None for n in names)
  same_tuple = t.container is tuple or (t.container is None and not any(names))

  def check(e):
    if type(e) in (tuple, list) and len(e) == len(types):
      fields = e
    elif keyed and type(e) is dict and len(e) == len(names):
      try:
        fields = [e[n] for n in names]
      except KeyError:
        return None
    else:
      return None
    for v, ok in zip(fields, checks):
      if not ok(v):
        return None
    if same_tuple and type(e) is tuple:
      return e
    return build_container(t, list(fields))
  return check


def _elements_of(value, t: SequenceType, what: str) -> list:
  if hasattr(value, "as_elements"):
    return list(value.as_elements())
  try:
    return list(value)
  except TypeError:
    raise _mismatch(t, value, what, "A sequence is passed as a list of elements "
                    "(for example batches), or a fedjit Dataset.") from None


def _client_members(t: FederatedType, value: Any, what: str) -> list:
  """Splits a `{T}@CLIENTS` Python value into a list of member values."""
  if isinstance(value, list):
    return value
  member = t.member
  if not isinstance(member, SequenceType):
    leaves = jax.tree_util.tree_leaves(value)
    if leaves and all(hasattr(l, "shape") for l in leaves):
      sizes = {np.shape(l)[0] if np.ndim(l) else None for l in leaves}
      if len(sizes) == 1 and None not in sizes:
        n = sizes.pop()
        try:
          return [jax.tree_util.tree_map(lambda l: l[i], value) for i in range(n)]
        except Exception:
          pass
  if isinstance(value, tuple) and not hasattr(value, "_fields"):
    return list(value)
  raise FederatedTypeError(
      f"Expected a value of type {t}{' for ' + what if what else ''}: a list with "
      f"one {member} per client, or an array with a leading client axis; got "
      f"{describe(value)}.")


def client_what(what: str, i: int, client_ids: "list | None" = None) -> str:
  """How errors name client `i` of an argument described by `what`: by its
  id when the caller knows the clients' ids, else by its position."""
  name = repr(client_ids[i]) if client_ids is not None else str(i)
  return f"{what + ', ' if what else ''}client {name}"


def placed_members(t: FederatedType, value: Any, xp, what: str,
                   client_ids: "list | None" = None):
  """Returns (members, is_list) for a federated Python value; errors name a
  bad client by its id in `client_ids` (or its position)."""
  if t.placement == CLIENTS and not t.all_equal:
    members = _client_members(t, value, what)
    if not members:
      raise FederatedTypeError(
          f"Expected at least one client's value for {t}"
          f"{' (' + what + ')' if what else ''}, got an empty list.")
    out = []
    for i, m in enumerate(members):
      out.append(normalize(t.member, m, xp, client_what(what, i, client_ids)))
    return out, True
  return normalize(t.member, value, xp, what), False


def to_numpy(t: Type, rep: Any) -> Any:
  if isinstance(t, SequenceType):
    if isinstance(rep, PaddedSequence):
      return unpad(rep)
    return [to_numpy(t.element, e) for e in rep.elements]
  if isinstance(t, StructType):
    fields = struct_fields(t, rep)
    return build_container(t, [to_numpy(ft, v) for ft, v in zip(t.types(), fields)])
  # A copy: results may alias pooled input buffers (a program may return an
  # input unchanged), and those are reused by the next round.
  arr = np.array(rep, copy=True)
  return arr[()] if arr.ndim == 0 else arr
