"""The typed intermediate representation of federated computations.

A federated computation is traced once into a `Graph`: a list of `Node`s in
topological order, each a parameter, a constant, a structure, a selection, a
call of a jax computation, or an intrinsic call. Backends interpret graphs;
serialization writes them out.
"""

from __future__ import annotations

import contextvars
import dataclasses
import sys
import types as _pytypes
from typing import Any

import numpy as np

from fedjit.core._errors import (FederatedAttributeError, FederatedOperationError,
                                 FederatedTypeError, TypeNotAssignableError)
from fedjit.core._structure import Struct, to_elements
from fedjit.core._types import (FederatedType, FunctionType, SequenceType, StructType,
                                TensorType, Type, infer_type, tensor_types, to_type)

__all__ = ["Node", "Graph", "FederatedValue", "FunctionValue", "FunctionRef",
           "DeferredComputation", "Builder", "current_builder", "to_value"]


@dataclasses.dataclass(frozen=True)
class Node:
  """One step of a graph.

  op: "param" (attrs: index), "constant" (attrs: value), "struct" (args are
  the fields), "select" (attrs: index), "call" (attrs: fn; one argument or
  none), or "intrinsic" (attrs: name and its own attributes).
  """
  op: str
  args: tuple[int, ...]
  type: Type
  attrs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Graph:
  """A traced federated computation: nodes, parameter nodes and result node."""
  nodes: list[Node]
  params: list[int]
  result: int
  param_names: list[str]

  @property
  def parameter_type(self) -> Type | None:
    types = [self.nodes[i].type for i in self.params]
    if not types:
      return None
    if len(types) == 1:
      return types[0]
    return StructType(list(zip(self.param_names, types)))

  @property
  def result_type(self) -> Type:
    return self.nodes[self.result].type

  @property
  def function_params(self) -> list[int]:
    """Positions of the parameters of function type (bound when called)."""
    return [p for p, i in enumerate(self.params)
            if isinstance(self.nodes[i].type, FunctionType)]

  def jax_computations(self) -> list:
    """Every jax computation the graph calls, once each, in order."""
    seen, out = set(), []
    for node in self.nodes:
      for key in ("fn", "accumulate", "merge", "report"):
        fn = node.attrs.get(key)
        if fn is not None and id(fn) not in seen:
          seen.add(id(fn))
          out.append(fn)
    return out


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


def bind_functions(attrs: dict, functions: dict) -> dict:
  """`attrs` with every `FunctionRef` to a position in `functions` replaced
  (also inside computations that hold references, see `DeferredComputation`)."""
  if not functions or not any(hasattr(v, "bind_functions") for v in attrs.values()):
    return attrs
  return {k: (v.bind_functions(functions) if hasattr(v, "bind_functions") else v)
          for k, v in attrs.items()}


class DeferredComputation:
  """A computation built from function parameters once they are bound: while
  tracing it has only its declared `type_signature`; `bind_functions` makes
  the real computation with `make(*computations)` when every reference is
  bound (a sequence intrinsic applying a function parameter, for one)."""

  polymorphic = False
  batchable = True

  def __init__(self, name: str, type_signature: FunctionType, refs: list, make):
    self.name = name
    self.type_signature = type_signature
    self.refs = refs
    self.make = make

  def concretize(self, parameter_type):
    return self

  def invoke(self, arg):
    raise TypeError(f"'{self.name}' uses function parameters that were not given "
                    f"computations.")

  def bind_functions(self, functions: dict):
    refs = [r.bind_functions(functions) if isinstance(r, FunctionRef) else r
            for r in self.refs]
    if any(isinstance(r, FunctionRef) for r in refs):
      return DeferredComputation(self.name, self.type_signature, refs, self.make)
    comp = self.make(*refs)
    declared, got = self.type_signature.result, comp.type_signature.result
    if not declared.is_assignable_from(got):
      raise FederatedTypeError(
          f"'{self.name}' was traced with a result of type {declared} (from the "
          f"declared function type), but the function given gives {got}.")
    return comp


class FunctionRef:
  """A function-typed parameter of a federated computation, where a node uses
  it (as its `fn`): replaced by the computation the caller passes.

  It stands in for a computation while the graph is traced: it has a
  `type_signature` (the declared `FunctionType`), and cannot run.
  """

  polymorphic = False
  batchable = True

  def __init__(self, position: int, name: str, type_signature: FunctionType):
    self.position = position
    self.name = name
    self.type_signature = type_signature

  @property
  def num_params(self) -> int:
    p = self.type_signature.parameter
    return 0 if p is None else 1

  def concretize(self, parameter_type):
    return self

  def bind_functions(self, functions: dict):
    return functions.get(self.position, self)

  def invoke(self, arg):
    raise TypeError(
        f"The function parameter '{self.name}' ({self.type_signature}) was not "
        f"given a computation. Call the federated computation with a "
        f"fedjit.jax_computation for it.")

  def __repr__(self) -> str:
    return f"<function parameter {self.name}: {self.type_signature}>"


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
      # Imported here: _intrinsics builds its nodes with this module (a real cycle).
      from fedjit.core._intrinsics import federated_zip
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


def to_value(value: Any, type_spec: Any = None) -> FederatedValue:
  """A value of the federated computation being traced (TFF's `to_value`).

  Builds a value from a federated value, a Python container (list, tuple,
  dict, namedtuple, dataclass, attrs instance or `fedjit.structure.Struct`)
  of them, or a constant (a Python number, NumPy scalar or array). With
  `type_spec`, the constant takes that type (`to_value(1, np.float32)` is a
  float32 constant) and the value must be assignable to it.

  Only inside a `@fedjit.federated_computation` being traced: elsewhere
  values are plain Python/NumPy values and need no conversion.

  Example:
    >>> import numpy as np, fedjit
    >>> @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.SERVER))
    ... def pair(x):
    ...   v = fedjit.to_value([x, x])
    ...   assert str(v.type_signature) == '<int32@SERVER,int32@SERVER>'
    ...   return v
    >>> str(pair.type_signature)
    '(int32@SERVER -> <int32@SERVER,int32@SERVER>)'

  Raises:
    TypeError: not inside a federated computation, `value` cannot become a
      federated value, or its type is not assignable to `type_spec`.
    ValueError: a constant cannot be represented in `type_spec`'s dtype
      (e.g. `10` as a bool).
  """
  b = current_builder()
  if b is None:
    raise FederatedOperationError(
        "fedjit.to_value builds values of a federated computation being traced; "
        "call it inside a @fedjit.federated_computation. Outside one, use the "
        "Python/NumPy value itself.")
  t = None if type_spec is None else to_type(type_spec)
  if isinstance(value, FederatedValue) or _contains_value(value):
    v = b.value(value, "value")
  else:
    if isinstance(t, TensorType):
      v = b.add("constant", [], t, value=[_cast_constant(value, t)])
    elif isinstance(t, SequenceType):
      raise FederatedOperationError(
          f"fedjit.to_value cannot build a sequence of type {t} from {value!r} inside "
          f"a federated computation; pass sequences as arguments of the computation.")
    else:
      if not _is_convertible(value):
        raise FederatedOperationError(
            f"Expected a Python types that is convertible to a `fedjit.FederatedValue` "
            f"(a federated value, a NumPy/Python number or array, or a list, tuple, "
            f"dict, namedtuple, dataclass or Struct of them), found {type(value)}.")
      v = b.value(value, "value")
  if t is not None and not t.is_assignable_from(v.type):
    raise TypeNotAssignableError(
        f"fedjit.to_value: the value of type {v.type} is not assignable to the "
        f"requested type {t}.")
  return v


def _is_convertible(x) -> bool:
  if isinstance(x, (bool, int, float, str, bytes, np.generic, np.ndarray)):
    return True
  if hasattr(x, "dtype") and hasattr(x, "shape"):
    return True
  if isinstance(x, (list, tuple, Struct)):
    return all(_is_convertible(e) for e in x)
  if isinstance(x, dict):
    return all(_is_convertible(e) for e in x.values())
  if _is_record(x):
    return all(_is_convertible(e) for _, e in _record_items(x))
  return False


def _cast_constant(value, t):
  """`value` as an array of tensor type `t`, or a ValueError if it does not fit."""
  if not _is_convertible(value) or isinstance(value, (list, tuple, dict)):
    raise FederatedOperationError(
        f"Expected a Python types that is convertible to a `fedjit.FederatedValue` of "
        f"type {t}, found {value!r} ({type(value).__name__}).")
  a = np.asarray(value)
  if a.dtype != t.dtype and not np.can_cast(np.min_scalar_type(a) if a.ndim == 0 else a.dtype,
                                             t.dtype, casting="same_kind"):
    raise ValueError(
        f"Cannot represent the value {value!r} ({a.dtype}) as the type {t}; give a "
        f"value of a compatible dtype, or a matching type_spec.")
  out = a.astype(t.dtype)
  if a.dtype != t.dtype and not np.array_equal(out, a):
    raise ValueError(f"The value {value!r} changes when converted to {t} ({out!r}).")
  if t.shape is not None and any(
      d is not None and d != s for d, s in zip(t.shape, out.shape)) or (
      t.shape is not None and len(t.shape) != out.ndim):
    raise ValueError(f"The value of shape {out.shape} does not fit the type {t}.")
  return out


def ensure_federated_value(value: FederatedValue, placement=None,
                           label: str | None = None) -> FederatedValue:
  """`value` as one federated value, placed at `placement` if given (TFF's
  `value_utils.ensure_federated_value`).

  A structure of federated values at one placement is zipped
  (`fedjit.federated_zip`) into a federated structure.

  Example:
    >>> import numpy as np, fedjit
    >>> from fedjit.core._ir import ensure_federated_value
    >>> @fedjit.federated_computation([fedjit.FederatedType(np.int32, fedjit.CLIENTS)] * 2)
    ... def zipped(x):
    ...   return ensure_federated_value(x, fedjit.CLIENTS)
    >>> str(zipped.type_signature.result)
    '{<int32,int32>}@CLIENTS'

  Raises:
    TypeError: `value` is not federated and cannot be zipped into one
      federated value, or it is placed elsewhere than `placement`.
  """
  what = label or "value"
  if not isinstance(value.type, FederatedType):
    # Imported here: _intrinsics builds its nodes with this module (a real cycle).
    from fedjit.core._intrinsics import federated_zip
    try:
      value = federated_zip(value)
    except (TypeError, ValueError) as e:
      raise FederatedOperationError(
          f"The {what} must be a federated value or implicitly convertible to a "
          f"federated value (a structure of federated values at one placement), got "
          f"a {value.type}: {e}") from None
  if placement is not None and value.type.placement != placement:
    raise FederatedOperationError(
        f"The {what} should be placed at {placement}, but it is placed at "
        f"{value.type.placement} (type {value.type}). Move it with "
        f"fedjit.federated_broadcast (SERVER to CLIENTS) or an aggregation such as "
        f"fedjit.federated_sum (CLIENTS to SERVER).")
  return value
