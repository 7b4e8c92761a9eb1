"""Which nodes of a fused graph can stream their client data (see
`backends/vectorized/streaming.py`, which runs such a graph chunk by chunk).

A graph streams when exactly one parameter holds per-client values, a
sequence at CLIENTS, and its values reach nothing but fused map-reduce nodes
(`fusion.py`), through selections, structures and zips.
"""

from __future__ import annotations

from fedjit.core._ir import Graph
from fedjit.core._types import FederatedType, SequenceType, has_client_values

__all__ = ["stream_plan", "streamed_parameter"]


def streamed_parameter(types: list) -> "int | None":
  """The index of the one parameter that can be streamed (a sequence at
  CLIENTS, the only parameter with per-client values), or None."""
  clients = [i for i, t in enumerate(types) if has_client_values(t)]
  if (len(clients) == 1 and isinstance(types[clients[0]], FederatedType)
      and isinstance(types[clients[0]].member, SequenceType)):
    return clients[0]
  return None


def stream_plan(graph: Graph, index: int) -> "tuple | None":
  """(index, fused node indices) when parameter `index` of the fused `graph`
  reaches nothing but fused map-reduce nodes and not the result; else None."""
  plan = None
  tainted = {graph.params[index]}
  streamed = []
  for j, node in enumerate(graph.nodes):
    if not any(a in tainted for a in node.args):
      continue
    name = node.attrs.get("name") if node.op == "intrinsic" else None
    if name == "fused_map_reduce":
      streamed.append(j)
    elif node.op in ("select", "struct") or name == "federated_zip":
      tainted.add(j)
    else:
      streamed = None
      break
  if streamed and graph.result not in tainted:
    plan = (index, tuple(streamed))
  return plan
