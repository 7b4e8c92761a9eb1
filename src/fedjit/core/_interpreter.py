"""The one interpreter of federated graphs.

Backends differ only in how they hold placed values and implement each
intrinsic (an `Ops` object); walking the graph is shared.
"""

from __future__ import annotations

from typing import Any

from fedjit.core._ir import Graph, Node
from fedjit.core._types import FederatedType, StructType, build_container, struct_fields

__all__ = ["Ops", "evaluate"]


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


def is_federated(t) -> bool:
  return isinstance(t, FederatedType)
