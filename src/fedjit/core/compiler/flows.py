"""Which values flow from CLIENTS to the SERVER in a federated graph, and in
what form: only an aggregate, an order statistic, or individual values.

An analysis of the IR alone (no backend): every intrinsic whose input is
placed at CLIENTS and whose result is at the SERVER is a flow. The
`privacy_report` of `fedjit.core` is built on it.
"""

from __future__ import annotations

import dataclasses

from fedjit.core._ir import Graph
from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._types import FederatedType, Type

__all__ = ["Flow", "client_to_server_flows", "REVEALS"]

# What the server learns from each intrinsic that moves values from CLIENTS
# to the SERVER, and whether a secure protocol hides the individual values.
REVEALS = {
    "federated_mean": ("aggregate", False),
    "federated_sum": ("aggregate", False),
    "federated_aggregate": ("aggregate (user-defined accumulate)", False),
    "federated_secure_sum": ("aggregate", True),
    "federated_secure_sum_bitwidth": ("aggregate", True),
    "federated_secure_modular_sum": ("aggregate", True),
    "federated_min": ("order statistic (a client's value, per coordinate)", False),
    "federated_max": ("order statistic (a client's value, per coordinate)", False),
    "federated_collect": ("individual values", False),
}


@dataclasses.dataclass(frozen=True)
class Flow:
  """One flow of client values to the server.

  `intrinsic`: the intrinsic's name; `node`: its index in the graph;
  `client_type`: the `{T}@CLIENTS` value it takes (for a weighted mean, of
  the values); `server_type`: what reaches the server; `reveals`:
  "aggregate", "individual values", ...; `secure`: whether a secure sum
  carries it (the server learns only the sum).
  """
  intrinsic: str
  node: int
  client_type: Type
  server_type: Type
  reveals: str
  secure: bool

  @property
  def individual(self) -> bool:
    """True if the server sees single clients' values."""
    return not self.reveals.startswith("aggregate")


def client_to_server_flows(graph: Graph) -> list[Flow]:
  """Every CLIENTS -> SERVER flow of `graph` (a traced, unfused graph), in
  graph order.

  Example:
    >>> [f.intrinsic for f in client_to_server_flows(fed_avg.next.graph)]
    ['federated_sum', 'federated_mean']
  """
  flows = []
  for j, node in enumerate(graph.nodes):
    if node.op != "intrinsic" or node.attrs.get("name") not in REVEALS:
      continue
    result = node.type
    if not (isinstance(result, FederatedType) and result.placement == SERVER):
      continue
    inputs = [graph.nodes[a].type for a in node.args]
    clients = [t for t in inputs if isinstance(t, FederatedType) and t.placement == CLIENTS]
    if not clients:
      continue
    reveals, secure = REVEALS[node.attrs["name"]]
    flows.append(Flow(node.attrs["name"], j, clients[0], result, reveals, secure))
  return flows
