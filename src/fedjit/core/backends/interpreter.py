"""The one interpreter of federated graphs: `evaluate(graph, params, ops)`, and the
`Ops` protocol that names every operation and intrinsic a backend implements.

Backends differ only in how they hold placed values and implement each
intrinsic (an `Ops` object); walking the graph is shared.
"""

from __future__ import annotations

from typing import Any

from fedjit.core._ir import Graph, Node
from fedjit.core._types import StructType, build_container, struct_fields
from fedjit.core.backends.common import constant_value

__all__ = ["Ops", "evaluate", "select_field"]


class Ops:
  """What a backend implements. Each intrinsic gets its node and arguments.

  Public as `fedjit.core.Ops`. Subclass it and implement, over your own
  representation of placed values, `call` (a `jax_computation` node: run
  `node.attrs["fn"].invoke(arg)`), `select` (field `node.attrs["index"]` of a
  structure; `fedjit.core.struct_fields(t, value)[index]` for one unplaced value)
  and every `federated_*` method. `node.type` is the result's type (a `FederatedType`
  for intrinsics); functional arguments are in `node.attrs` (`fn`; for
  `federated_aggregate` also `accumulate`, `merge`, `report`). `constant`
  (arrays from `node.attrs["value"]`) and `struct` (a Python container of
  `node.type`) have defaults. `fused_map_reduce` only appears in graphs that
  a backend rewrote itself with `core/compiler/`.

  Example:
    >>> class SumOnlyOps(fedjit.core.Ops):   # CLIENTS values as lists of members
    ...   def federated_sum(self, node, v):
    ...     return sum(np.asarray(m) for m in v)
    >>> comp = fedjit.federated_computation(
    ...     fedjit.FederatedType(np.float32, fedjit.CLIENTS))(fedjit.federated_sum)
    >>> float(fedjit.core.evaluate(comp.graph, [[1.0, 2.0]], SumOnlyOps()))
    3.0

  tests/core/test_third_backend.py is a complete backend written this way.
  """

  def constant(self, node: Node) -> Any:
    """The constant's arrays (jax arrays) in a container of `node.type`."""
    return constant_value(node)

  def call(self, node: Node, arg: Any) -> Any:
    raise NotImplementedError

  def select(self, node: Node, source_type, value: Any) -> Any:
    raise NotImplementedError

  def struct(self, node: Node, fields: list) -> Any:
    return build_container(node.type, fields)

  # Intrinsics: `node` is the intrinsic's graph node (its type, and attrs
  # such as `fn`), the other arguments the backend's values of its inputs.

  def federated_value(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_broadcast(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_zip(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_map(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_mean(self, node: Node, v: Any, w: Any = None) -> Any:
    raise NotImplementedError

  def federated_sum(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_min(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_collect(self, node: Node, v: Any) -> Any:
    """Every client's value at the server, stacked along a new leading axis."""
    raise NotImplementedError

  def federated_max(self, node: Node, v: Any) -> Any:
    raise NotImplementedError

  def federated_eval(self, node: Node) -> Any:
    raise NotImplementedError

  def federated_select(self, node: Node, keys: Any, max_key: Any, server: Any) -> Any:
    raise NotImplementedError

  def federated_secure_sum(self, node: Node, v: Any, bound: Any) -> Any:
    raise NotImplementedError

  def federated_secure_sum_bitwidth(self, node: Node, v: Any, bound: Any) -> Any:
    raise NotImplementedError

  def federated_secure_modular_sum(self, node: Node, v: Any, modulus: Any) -> Any:
    raise NotImplementedError

  def federated_aggregate(self, node: Node, v: Any, zero: Any) -> Any:
    raise NotImplementedError

  def fused_map_reduce(self, node: Node, v: Any) -> Any:
    """Only in graphs rewritten by `compiler.fuse_map_reduce`."""
    raise NotImplementedError


def select_field(source_type: StructType, value: Any, index: int) -> Any:
  """Field `index` of a structure value."""
  return struct_fields(source_type, value)[index]


def evaluate(graph: Graph, params: list, ops: Ops) -> Any:
  """Runs `graph` with parameter values `params` using backend `ops`.

  Public as `fedjit.core.evaluate`: a backend's `run` calls it on a
  `FederatedComputation`'s `comp.graph`, with one value per parameter in
  the backend's own representation, inside `with fedjit.core.executing():`.

  Args:
    graph: a federated computation's graph (`comp.graph`).
    params: the parameters' values, in the representation `ops` uses.
    ops: the backend's `Ops`.

  Returns:
    The value of the graph's result node, in `ops`'s representation.

  Example:
    >>> comp = fedjit.federated_computation(
    ...     fedjit.FederatedType(np.float32, fedjit.CLIENTS))(fedjit.federated_sum)
    >>> float(fedjit.core.evaluate(comp.graph, [[1.0, 2.0]], SumOnlyOps()))  # see `Ops`
    3.0
  """
  values: list[Any] = [None] * len(graph.nodes)
  last_use = _last_uses(graph)
  for i, node in enumerate(graph.nodes):
    args = [values[a] for a in node.args]
    if node.op == "param":
      out = params[node.attrs["index"]]
    elif node.op == "constant":
      out = ops.constant(node)
    elif node.op == "struct":
      out = ops.struct(node, args)
    elif node.op == "select":
      out = ops.select(node, graph.nodes[node.args[0]].type, args[0])
    elif node.op == "call":
      out = ops.call(node, args[0] if args else None)
    elif node.op == "intrinsic":
      out = getattr(ops, node.attrs["name"])(node, *args)
    else:
      raise ValueError(f"Unknown graph operation {node.op!r}.")
    values[i] = out
    for a in node.args:  # free intermediate values as soon as possible
      if last_use[a] == i and a != graph.result:
        values[a] = None
  return values[graph.result]


def _last_uses(graph: Graph) -> list[int]:
  last = list(range(len(graph.nodes)))
  for i, node in enumerate(graph.nodes):
    for a in node.args:
      last[a] = i
  return last

