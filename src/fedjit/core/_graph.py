"""The traced graph: `Node`s and the `Graph` of a federated computation, and the
function references (`FunctionRef`, `DeferredComputation`) bound when it is called.

A federated computation is traced once into a `Graph`: a list of `Node`s in
topological order, each a parameter, a constant, a structure, a selection, a
call of a jax computation, or an intrinsic call. Backends interpret graphs;
serialization writes them out.
"""

from __future__ import annotations

import dataclasses

from fedjit.core._errors import FederatedTypeError
from fedjit.core._types import FunctionType, StructType, Type

__all__ = ["Node", "Graph", "FunctionRef", "DeferredComputation", "bind_functions"]


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
