"""Fusing a client map with the aggregations of its results.

In `federated_mean(federated_map(client_update, data), weight)` the stacked
client results exist only to be averaged. The vectorized backend rewrites
such a pattern into one `fused_map_reduce` node: a loop over clients that
carries running sums (Σ wᵢvᵢ, Σ wᵢ, Σ vᵢ), so memory holds one client's
result at a time instead of one per client.

A `federated_map` at CLIENTS is fused when every use of its result is a
field selection (`result[0].update`) or an aggregation (`federated_mean`,
with or without weights, or `federated_sum`) whose arguments all derive from
that same result; the graph's own result must not be the client values.
"""

from __future__ import annotations

from fedjit.core._ir import Graph, Node
from fedjit.core._placements import CLIENTS
from fedjit.core._types import FederatedType, StructType

__all__ = ["fuse_map_reduce"]

_REDUCTIONS = ("federated_mean", "federated_sum")


def _is_client_map(node: Node) -> bool:
  return (node.op == "intrinsic" and node.attrs.get("name") == "federated_map"
          and isinstance(node.type, FederatedType) and node.type.placement == CLIENTS)


def _plan(graph: Graph, m: int, users: dict[int, list[int]]):
  """For map node `m`: ({derived node: path}, [aggregation nodes]) or None."""
  paths = {m: ()}
  reductions: list[int] = []
  frontier = [m]
  while frontier:
    d = frontier.pop()
    if d == graph.result:
      return None
    for u in users.get(d, []):
      node = graph.nodes[u]
      if node.op == "select" and u not in paths:
        paths[u] = paths[d] + (node.attrs["index"],)
        frontier.append(u)
      elif node.op == "intrinsic" and node.attrs.get("name") in _REDUCTIONS:
        if u not in reductions:
          reductions.append(u)
      elif node.op != "select":
        return None
  for r in reductions:
    if not all(a in paths for a in graph.nodes[r].args):
      return None
  return (paths, reductions) if reductions else None


def simplify(graph: Graph) -> Graph:
  """Forwards selections of structures (`<a, b>[0]` is `a`, also through
  `federated_zip`) and drops nodes the result does not depend on."""
  nodes = graph.nodes
  forward: dict[int, int] = {}

  def source(i: int) -> int:
    return forward.get(i, i)

  for i, node in enumerate(nodes):
    if node.op != "select":
      continue
    src = nodes[source(node.args[0])]
    if src.op == "intrinsic" and src.attrs.get("name") == "federated_zip":
      src = nodes[source(src.args[0])]
    if src.op == "struct":
      forward[i] = source(src.args[node.attrs["index"]])
  live: set[int] = set()
  stack = [source(graph.result)] + [p for p in graph.params]
  while stack:
    i = stack.pop()
    if i in live:
      continue
    live.add(i)
    stack.extend(source(a) for a in nodes[i].args)
  index: dict[int, int] = {}
  new_nodes: list[Node] = []
  for i, node in enumerate(nodes):
    if i in live:
      new_nodes.append(Node(node.op, tuple(index[source(a)] for a in node.args), node.type,
                            dict(node.attrs)))
      index[i] = len(new_nodes) - 1
  return Graph(new_nodes, [index[p] for p in graph.params], index[source(graph.result)],
               list(graph.param_names))


def fuse_map_reduce(graph: Graph) -> Graph:
  """`graph` with every fusable client map + aggregations made one node.

  Example:
    >>> fused = fuse_map_reduce(next_fn.graph)
  """
  graph = simplify(graph)
  users: dict[int, list[int]] = {}
  for i, node in enumerate(graph.nodes):
    for a in node.args:
      users.setdefault(a, []).append(i)
  plans = {}
  claimed: set[int] = set()
  for i, node in enumerate(graph.nodes):
    if _is_client_map(node):
      plan = _plan(graph, i, users)
      if plan is not None and not (set(plan[0]) & claimed):
        plans[i] = plan
        claimed |= set(plan[0])
  if not plans:
    return graph

  replace: dict[int, tuple[int, int]] = {}  # reduction node -> (map node, position)
  dead: set[int] = set()
  for m, (paths, reductions) in plans.items():
    dead |= set(paths)
    for pos, r in enumerate(reductions):
      replace[r] = (m, pos)

  new_nodes: list[Node] = []
  index: dict[int, int] = {}
  for i, node in enumerate(graph.nodes):
    if i in plans:
      paths, reductions = plans[i]
      specs = []
      for r in reductions:
        rn = graph.nodes[r]
        weight = paths[rn.args[1]] if len(rn.args) > 1 else None
        specs.append((rn.attrs["name"], paths[rn.args[0]], weight))
      fused_type = StructType([graph.nodes[r].type for r in reductions])
      new_nodes.append(Node("intrinsic", tuple(index[a] for a in node.args), fused_type,
                            {"name": "fused_map_reduce", "fn": node.attrs["fn"],
                             "reductions": tuple(specs)}))
      index[i] = len(new_nodes) - 1
    elif i in replace:
      m, pos = replace[i]
      new_nodes.append(Node("select", (index[m],), node.type, {"index": pos}))
      index[i] = len(new_nodes) - 1
    elif i in dead:
      continue
    else:
      new_nodes.append(Node(node.op, tuple(index[a] for a in node.args), node.type,
                            dict(node.attrs)))
      index[i] = len(new_nodes) - 1
  return Graph(new_nodes, [index[p] for p in graph.params], index[graph.result],
               list(graph.param_names))
