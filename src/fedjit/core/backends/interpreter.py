"""The one interpreter of federated graphs: `evaluate(graph, params, ops)`, and the
`Ops` protocol that names every operation and intrinsic a backend implements.

Backends differ only in how they hold placed values and implement each
intrinsic (an `Ops` object); walking the graph is shared.
"""

from __future__ import annotations

from typing import Any

from fedjit.core._ir import Graph, Node
from fedjit.core._types import StructType, build_container, struct_fields

__all__ = ["Ops", "evaluate", "select_field"]


class Ops:
  """What a backend implements. Each intrinsic gets its node and arguments."""

  def constant(self, node: Node) -> Any:
    raise NotImplementedError

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
  """Runs `graph` with parameter values `params` using backend `ops`."""
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

