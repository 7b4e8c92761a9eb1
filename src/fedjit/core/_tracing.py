"""Tracing: the `Builder` that collects a federated computation's nodes, and the
symbolic values (`FederatedValue`, `FunctionValue`) its Python function runs on,
with `federated_zip`, which indexing a placed structure needs.

Struct values support `v[0]`, `v['name']`, `v.name` and unpacking; every
other operation must go through intrinsics, and misuse (`+`, `if`, NumPy
calls) raises an error that says so.
"""

from __future__ import annotations

import contextvars
import dataclasses
from typing import Any

import numpy as np

from fedjit.core._errors import (FederatedAttributeError, FederatedOperationError,
                                 FederatedTypeError, FederatedValueError, PlacementError)
from fedjit.core._graph import FunctionRef, Graph, Node, bind_functions
from fedjit.core._structure import Struct, to_elements
from fedjit.core._types import (FederatedType, FunctionType, StructType, Type,
                                check_no_placement_in, infer_type, tensor_types)

__all__ = ["Builder", "current_builder", "builder_for", "FederatedValue",
           "FunctionValue", "federated_zip", "zip_federated", "find_value_in_traceback"]


_BUILDER: contextvars.ContextVar["Builder | None"] = contextvars.ContextVar(
    "fedjit_builder", default=None)


def current_builder() -> "Builder | None":
  """The graph builder of the federated computation being traced, if any."""
  return _BUILDER.get()


class Builder:
  """Collects nodes while a federated computation's Python function runs."""

  def __init__(self, name: str):
    self.name = name
    self.nodes: list[Node] = []

  def __enter__(self):
    self._token = _BUILDER.set(self)
    return self

  def __exit__(self, *exc):
    _BUILDER.reset(self._token)

  def add(self, op: str, args, type_: Type, **attrs) -> "FederatedValue":
    for a in args:
      assert 0 <= a < len(self.nodes), (a, len(self.nodes))
    self.nodes.append(Node(op, tuple(args), type_, attrs))
    if isinstance(type_, FunctionType):
      return FunctionValue(self, len(self.nodes) - 1, type_)
    return FederatedValue(self, len(self.nodes) - 1, type_)

  def value(self, x: Any, what: str = "value") -> "FederatedValue":
    """Turns a FederatedValue, a Python structure of them, or a constant into
    a value of this graph."""
    if isinstance(x, FunctionValue):
      raise FederatedOperationError(
          f"The function {x.type} can only be called or passed to an intrinsic "
          f"(such as fedjit.federated_map) as its function argument; it cannot be "
          f"used as a {what}.")
    if isinstance(x, FederatedValue):
      if x._builder is not self:
        raise FederatedOperationError(
            f"The value {x} belongs to another federated computation's trace; "
            f"pass it to this computation as an argument instead of capturing it.")
      return x
    if _contains_value(x):
      container = type(x)
      if isinstance(x, Struct):
        items = [(n, self.value(v, what)) for n, v in to_elements(x)]
        container = None
      elif isinstance(x, dict):
        items = [(str(k), self.value(v, what)) for k, v in x.items()]
      elif hasattr(x, "_fields"):
        items = [(n, self.value(v, what)) for n, v in zip(x._fields, x)]
      elif isinstance(x, (list, tuple)):
        items = [(None, self.value(v, what)) for v in x]
      elif _is_record(x):
        items = [(n, self.value(v, what)) for n, v in _record_items(x)]
      else:
        raise FederatedOperationError(f"Cannot use {x!r} as a {what}.")
      st = StructType([(n, v.type) for n, v in items], container=container)
      return self.add("struct", [v.index for _, v in items], st)
    if callable(x) and not hasattr(x, "shape"):
      raise FederatedOperationError(
          f"Expected a {what} (a federated value or a constant), got the function "
          f"{getattr(x, '__name__', x)!r}. Call it, or pass it to an intrinsic "
          f"such as fedjit.federated_map.")
    try:
      t = infer_type(x)
    except TypeError as e:
      raise FederatedOperationError(f"Cannot use {x!r} as a {what}: {e}") from None
    leaves = _const_leaves(t, x)
    return self.add("constant", [], t, value=leaves)

  def inline(self, graph: Graph, arg_indices: list, functions: dict | None = None
             ) -> "FederatedValue":
    """Copies `graph` into this builder with its parameters bound to args.

    Parameters of function type are bound through `functions` (position ->
    a computation or this builder's `FunctionRef`); their `arg_indices`
    entries are ignored.
    """
    functions = functions or {}
    mapping: dict[int, int] = {}
    for pos, pi in enumerate(graph.params):
      if pos not in functions:
        mapping[pi] = arg_indices[pos]
    for i, node in enumerate(graph.nodes):
      if node.op == "param":
        continue
      attrs = bind_functions(node.attrs, functions)
      v = self.add(node.op, [mapping[a] for a in node.args], node.type, **attrs)
      mapping[i] = v.index
    return FederatedValue(self, mapping[graph.result], graph.result_type)


def builder_for(name: str) -> Builder:
  """The builder of the federated computation being traced, for the intrinsic
  `name`; a RuntimeError outside one.

  Example:
    >>> b = builder_for("federated_sum")   # inside a federated computation
    >>> v = b.value(value, "value to sum")
  """
  b = current_builder()
  if b is None:
    raise RuntimeError(
        f"fedjit.{name} can only be used inside a @fedjit.federated_computation; "
        f"it was called from ordinary Python code.")
  return b


def _const_leaves(t, x):
  import jax
  return [np.asarray(l, dtype=lt.dtype) for l, lt in zip(
      jax.tree_util.tree_leaves(x), tensor_types(t))]


def _is_record(x) -> bool:
  """An attrs or dataclass instance (not a class)."""
  return not isinstance(x, type) and (
      getattr(type(x), "__attrs_attrs__", None) is not None or dataclasses.is_dataclass(x))


def _record_items(x) -> list:
  if getattr(type(x), "__attrs_attrs__", None) is not None:
    return [(a.name, getattr(x, a.name)) for a in type(x).__attrs_attrs__]
  return [(f.name, getattr(x, f.name)) for f in dataclasses.fields(x)]


def _contains_value(x) -> bool:
  if isinstance(x, FederatedValue):
    return True
  if isinstance(x, dict):
    return any(_contains_value(v) for v in x.values())
  if isinstance(x, (list, tuple, Struct)):
    return any(_contains_value(v) for v in x)
  if _is_record(x):
    return any(_contains_value(v) for _, v in _record_items(x))
  return False


def _misuse(value: "FederatedValue", what: str, error: type = FederatedOperationError,
            doing: str | None = None, detail: str = "") -> FederatedOperationError:
  """The error for `what` (e.g. "the operator `+`") applied to a federated value."""
  return error(
      f"Cannot {doing or 'apply ' + what + ' to'} the value of type {value.type}{detail} "
      f"inside the federated computation '{value._builder.name}': federated "
      f"computations combine values only with intrinsics (fedjit.federated_map, "
      f"federated_mean, ...). Move the JAX/NumPy code into a @fedjit.jax_computation "
      f"and apply it with fedjit.federated_map (for placed values) or by calling it "
      f"(for unplaced ones).")


class FieldNotFoundError(FederatedAttributeError, KeyError):
  """`v['name']` for a field a structure value lacks: an AttributeError (as in
  TFF) and a KeyError (as for dicts)."""

  def __str__(self) -> str:
    return str(self.args[0]) if self.args else ""


class FederatedValue:
  """A symbolic value inside a federated computation being traced.

  Struct values support `v[0]`, `v['name']`, `v.name` and unpacking; every
  other operation must go through intrinsics.
  """

  __array_priority__ = 1000

  def __init__(self, builder: Builder, index: int, type_: Type):
    self._builder = builder
    self.index = index
    self.type = type_

  @property
  def type_signature(self) -> Type:
    return self.type

  def __repr__(self) -> str:
    return f"<fedjit.FederatedValue of type {self.type}>"

  def _struct(self) -> StructType:
    t = self.type.member if isinstance(self.type, FederatedType) else self.type
    if not isinstance(t, StructType):
      raise FederatedOperationError(
          f"Indexing, slicing and unpacking are only supported for structure "
          f"values (such as <a=int32,b=float32> or {{<int32,float32>}}@CLIENTS); "
          f"this value has type {self.type}. Index tensors inside a "
          f"@fedjit.jax_computation instead.")
    return t

  def __dir__(self) -> list[str]:
    names = set(super().__dir__())
    t = self.type.member if isinstance(self.type, FederatedType) else self.type
    if isinstance(t, StructType):
      names.update(n for n in t.names() if n is not None)
    return sorted(names)

  def __getitem__(self, key):
    st = self._struct()
    if isinstance(key, slice):
      return self._slice(st, key)
    if isinstance(key, str):
      if key not in st.names():
        raise FieldNotFoundError(
            f"There is no such attribute '{key}' in the value of type {self.type}; "
            f"its fields are {[n for n in st.names() if n is not None]}.")
      index = st.index_of(key)
    elif isinstance(key, (int, np.integer)):
      index = int(key)
      if not -len(st) <= index < len(st):
        raise IndexError(f"Index {key} out of range for {self.type}.")
      index %= len(st)
    else:
      raise FederatedOperationError(
          f"Structure values are indexed by position or field name, got {key!r}.")
    member = st.types()[index]
    if isinstance(self.type, FederatedType):
      t = FederatedType(member, self.type.placement, self.type.all_equal)
    else:
      t = member
    return self._builder.add("select", [self.index], t, index=index)

  def _slice(self, st: StructType, key: slice) -> "FederatedValue":
    """`v[a:b:c]`: a structure of the selected fields (zipped if placed)."""
    positions = list(range(len(st)))[key]
    if not positions:
      raise IndexError(
          f"The slice {key.start}:{key.stop}:{key.step} of the value of type "
          f"{self.type} would slice 0 elements; fedjit has no empty federated "
          f"structures. Select at least one field.")
    names = st.names()
    fields = [(names[i], self[i]) for i in positions]
    if isinstance(self.type, FederatedType):
      return federated_zip(Struct(fields))
    return self._builder.value(Struct(fields))

  def __getattr__(self, name: str):
    # Reached only for names that are not attributes of FederatedValue itself
    # (`type`, `type_signature`, `index`): struct fields, or misuse such as
    # `x.shape`. The error is also an AttributeError, so hasattr() works.
    if name.startswith("_"):
      raise AttributeError(name)
    t = self.type.member if isinstance(self.type, FederatedType) else self.type
    if isinstance(t, StructType) and name in t.names():
      return self[name]
    if isinstance(t, StructType):
      raise FederatedAttributeError(
          f"There is no such attribute '{name}' in the value of type {self.type}; "
          f"its fields are {[n for n in t.names() if n is not None]}. Select a "
          f"field by name (v.a, v['a']) or position (v[0]).")
    raise _misuse(self, f"`.{name}`", FederatedAttributeError,
                  doing=f"read the attribute `.{name}` of")

  def __len__(self) -> int:
    return len(self._struct())

  def __iter__(self):
    st = self._struct()
    return iter([self[i] for i in range(len(st))])

  def __bool__(self):
    raise _misuse(self, "Python control flow (`if`/`while`/bool())")

  def __array__(self, *args, **kwargs):
    raise _misuse(self, "a NumPy operation")

  def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
    raise _misuse(self, f"numpy.{ufunc.__name__}")

  def __array_function__(self, func, types, args, kwargs):
    raise _misuse(self, f"numpy.{func.__name__}")

  def __index__(self):
    raise _misuse(self, "conversion to int")

  def __float__(self):
    raise _misuse(self, "conversion to float")


class FunctionValue(FederatedValue):
  """A value of function type inside a federated computation being traced:
  a parameter declared with a `fedjit.FunctionType`.

  Call it on unplaced values (`f(x)`), or pass it to an intrinsic as its
  function (`fedjit.federated_map(f, client_values)`).
  """

  def ref(self) -> FunctionRef:
    """The reference that nodes using this function hold."""
    node = self._builder.nodes[self.index]
    if node.op != "param":
      raise FederatedOperationError(
          f"Only function parameters of a federated computation can be used as "
          f"functions here, got {self.type}.")
    return FunctionRef(node.attrs["index"], node.attrs.get("name", "fn"), self.type)

  def __call__(self, *args):
    b = self._builder
    ft = self.type
    values = [b.value(a, f"argument of the function {ft}") for a in args]
    if not values:
      arg_index, arg_type = [], None
    elif len(values) == 1:
      arg_index, arg_type = [values[0].index], values[0].type
    else:
      st = StructType([v.type for v in values])
      arg_index, arg_type = [b.add("struct", [v.index for v in values], st).index], st
    expected = ft.parameter
    if (expected is None) != (arg_type is None) or (
        expected is not None and not expected.is_assignable_from(arg_type)):
      raise FederatedTypeError(
          f"The function {ft} expects an argument of type "
          f"{expected if expected is not None else '(none)'}, but was given "
          f"{arg_type if arg_type is not None else 'no argument'}.")
    return b.add("call", arg_index, ft.result, fn=self.ref())


def _add_operator(name: str, symbol: str):
  def op(self, *args):
    raise _misuse(self, f"the operator `{symbol}`")
  op.__name__ = name
  setattr(FederatedValue, name, op)


for _name, _sym in [
    ("__add__", "+"), ("__radd__", "+"), ("__sub__", "-"), ("__rsub__", "-"),
    ("__mul__", "*"), ("__rmul__", "*"), ("__truediv__", "/"),
    ("__rtruediv__", "/"), ("__floordiv__", "//"), ("__rfloordiv__", "//"),
    ("__pow__", "**"), ("__rpow__", "**"), ("__matmul__", "@"),
    ("__rmatmul__", "@"), ("__neg__", "-"), ("__pos__", "+"), ("__abs__", "abs"),
    ("__lt__", "<"), ("__le__", "<="), ("__gt__", ">"), ("__ge__", ">="),
    ("__mod__", "%"), ("__rmod__", "%")]:
  _add_operator(_name, _sym)


def find_value_in_traceback(exc: BaseException) -> "FederatedValue | None":
  """The FederatedValue that a JAX/NumPy function raised `exc` on, if any.

  Only errors raised inside JAX or NumPy count, so that ordinary mistakes in
  the traced function (a missing argument, say) keep their own message.
  """
  tb = exc.__traceback__
  frames = []
  while tb is not None:
    frames.append(tb.tb_frame)
    tb = tb.tb_next
  in_library = any(
      str(f.f_globals.get("__name__", "")).split(".")[0] in ("jax", "jaxlib", "numpy")
      for f in frames) or "FederatedValue" in str(exc)  # JAX hides its frames
  if not in_library:
    return None
  for frame in reversed(frames):
    for v in list(frame.f_locals.values()):
      for candidate in ([v] if not isinstance(v, (list, tuple)) else list(v)[:16]):
        if isinstance(candidate, FederatedValue):
          return candidate
  return None


def federated_zip(value: Any) -> FederatedValue:
  """Turns a structure of federated values into a federated structure.

  `<{A}@CLIENTS,{B}@CLIENTS> -> {<A,B>}@CLIENTS` (likewise at SERVER); all
  values must share a placement, and nested structures of federated values
  are zipped too (`<{A}@CLIENTS,<{B}@CLIENTS>> -> {<A,<B>>}@CLIENTS`). The
  result is all-equal only if every input is. As in TFF, a single federated
  value (not in a structure) is refused.

  Raises:
    FederatedValueError: `value` is not a structure (also a ValueError).
    PlacementError: its values are at different placements, or unplaced.

  Example:
    >>> pairs = fedjit.federated_zip((client_data, weights_at_clients))
  """
  b = builder_for("federated_zip")
  v = b.value(value, "structure to zip")
  if not isinstance(v.type, StructType):
    raise FederatedValueError(
        f"fedjit.federated_zip expects a structure of federated values, such as "
        f"(a, b) with a and b at the same placement, but was given a single value of "
        f"type {v.type}. A single federated value needs no zip: use it directly.")
  return zip_federated(b, v, "federated_zip")


def zip_federated(b: Builder, v: FederatedValue, name: str) -> FederatedValue:
  """`v` (a federated value, or a structure of them at one placement, nested
  structures included) as one federated value; errors name the intrinsic `name`.

  Example:
    >>> pair = zip_federated(b, b.value((x_at_clients, y_at_clients)), "federated_map")
    >>> str(pair.type)
    '{<int32,float32>}@CLIENTS'
  """
  if isinstance(v.type, FederatedType):
    return v
  if not isinstance(v.type, StructType) or len(v.type) == 0:
    raise PlacementError(f"fedjit.{name} expects a federated value or a structure of "
                         f"federated values, but was given {v.type}.")
  for i, (n, ft) in enumerate(v.type.items()):
    nested = isinstance(ft, StructType) and len(ft) and not check_no_placement_in(ft)
    if not (nested or isinstance(ft, FederatedType)):
      raise PlacementError(
          f"fedjit.{name} expects every field to be a federated value, but field "
          f"{n or i} has the unplaced type {ft} (in {v.type}). Place it with "
          f"fedjit.federated_value or fedjit.federated_broadcast first.")
  if any(isinstance(ft, StructType) for ft in v.type.types()):
    # Nested structures of federated values are zipped first.
    fields = [zip_federated(b, v[i], name) if isinstance(ft, StructType) else v[i]
              for i, ft in enumerate(v.type.types())]
    v = b.add("struct", [f.index for f in fields],
              StructType([(n, f.type) for n, f in zip(v.type.names(), fields)],
                         container=v.type.container))
  placements = {ft.placement for ft in v.type.types()}
  if len(placements) > 1:
    raise PlacementError(
        f"fedjit.{name} expects all values at the same placement, but was given "
        f"{v.type}. Broadcast SERVER values to the clients first with "
        f"fedjit.federated_broadcast.")
  members = StructType([(n, ft.member) for n, ft in v.type.items()],
                       container=v.type.container)
  all_equal = all(ft.all_equal for ft in v.type.types())
  return b.add("intrinsic", [v.index], FederatedType(members, placements.pop(), all_equal),
               name="federated_zip")
