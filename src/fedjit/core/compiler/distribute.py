"""Splitting a round for deployment: which part of a federated graph the
server runs before the clients, which part each client runs, and which part
the server runs on the aggregates (TFF's DistributeAggregateForm, for one
client stage).

Every node gets a phase:

* `PRE`: server work that needs no client value (it computes what is
  broadcast);
* `CLIENT`: work on one client's values: its data, the broadcast values, and
  what client computations make of them (the client program);
* `AGGREGATE`: an intrinsic that takes client values to the server (a sum,
  a mean, a secure sum, `federated_aggregate`, a collect, min or max);
* `POST`: server work on the aggregates;
* `PURE`: unplaced values (constants, calls of jax computations on them),
  computed wherever they are needed;
* `MIXED`: a structure of client and server values (such as a client work
  process's output), used only through selections of its fields.

A selection of a structure's field is an alias of that field, so a
structure that merely carries a server value beside a client value does not
bind them together. `split_round` builds the client program as a graph of
its own, whose parameters are the client parameters and the broadcast values
and whose result holds every client value an aggregation takes.
"""

from __future__ import annotations

import dataclasses

from fedjit.core._ir import Graph, Node
from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._types import FederatedType, StructType, Type

__all__ = ["RoundSplit", "split_round", "AGGREGATIONS", "PRE", "CLIENT", "AGGREGATE", "POST",
           "PURE"]

PRE, CLIENT, AGGREGATE, POST, PURE, MIXED = "pre", "client", "aggregate", "post", "pure", "mixed"

# Intrinsics that take client values to the server.
AGGREGATIONS = frozenset({
    "federated_mean", "federated_sum", "federated_min", "federated_max", "federated_collect",
    "federated_aggregate", "federated_secure_sum", "federated_secure_sum_bitwidth",
    "federated_secure_modular_sum"})


class StageError(ValueError):
  """A graph that does not run as one client stage per round."""


def _at_clients(t: Type) -> bool:
  if isinstance(t, FederatedType):
    return t.placement == CLIENTS
  return isinstance(t, StructType) and any(_at_clients(e) for e in t.types())


def _placed(t: Type) -> bool:
  if isinstance(t, FederatedType):
    return True
  return isinstance(t, StructType) and any(_placed(e) for e in t.types())


@dataclasses.dataclass
class RoundSplit:
  """A graph split into server and client parts (see the module docstring).

  `phases[j]`: node j's phase; `alias[j]`: the node whose value node j is
  (itself, or the field a selection picks); `client_params`: the graph's
  parameter positions holding client values; `broadcasts`: the broadcast
  nodes (their arguments are what the server sends); `aggregations`: the
  aggregation nodes, in graph order; `client_outputs`: the client-program
  nodes whose values the clients send, in the order of the client graph's
  result; `client_broadcasts`: the broadcast nodes the client program takes
  as parameters (after the client parameters), in order; `client_graph`: the
  client program.
  """
  graph: Graph
  phases: list
  alias: list
  client_params: list
  broadcasts: list
  aggregations: list
  client_outputs: list
  client_broadcasts: list
  client_graph: Graph


def _alias(graph: Graph, alias: list, j: int) -> int:
  node = graph.nodes[j]
  if node.op != "select":
    return j
  source = alias[node.args[0]]
  inner = graph.nodes[source]
  index = node.attrs.get("index")
  if inner.op == "struct" and isinstance(index, int) and index < len(inner.args):
    return alias[inner.args[index]]
  return j


def split_round(graph: Graph, name: str = "the computation") -> RoundSplit:
  """The phases of `graph`'s nodes and its client program.

  Raises:
    StageError: the graph needs a second client stage (it broadcasts or
      maps a value computed from this round's aggregates), or returns
      client-placed values.

  Example:
    >>> split = split_round(trainer.next.graph)
    >>> [graph.nodes[j].attrs["name"] for j in split.aggregations]
    ['federated_sum', 'federated_mean']
  """
  nodes = graph.nodes
  phases: list = [None] * len(nodes)
  alias = list(range(len(nodes)))

  def stage_error(j: int, what: str) -> StageError:
    return StageError(
        f"{name} cannot be deployed as one round trip to the clients: {what} (node {j}, "
        f"{nodes[j].op} {nodes[j].attrs.get('name', '')}). A deployed round broadcasts values "
        f"computed from the server's inputs, runs one client program, and aggregates its "
        f"results; split the computation into two rounds.")

  for j, node in enumerate(nodes):
    alias[j] = _alias(graph, alias, j)
    if alias[j] != j:
      phases[j] = phases[alias[j]]
      continue
    arg_phases = [phases[alias[a]] for a in node.args]
    intrinsic = node.attrs.get("name") if node.op == "intrinsic" else None
    if node.op == "param":
      if _at_clients(node.type) and not isinstance(node.type, FederatedType):
        raise stage_error(j, "a parameter mixes client and server values")
      phases[j] = CLIENT if _at_clients(node.type) else PRE
    elif intrinsic in AGGREGATIONS:
      for a, p in zip(node.args, arg_phases):
        if p == POST:
          raise stage_error(j, "an aggregation takes a value computed from another "
                               "aggregate of the same round")
      phases[j] = AGGREGATE
    elif intrinsic == "federated_broadcast":
      if arg_phases and arg_phases[0] in (POST, AGGREGATE):
        raise stage_error(j, "it broadcasts a value computed from this round's aggregates")
      phases[j] = CLIENT
    elif node.op == "struct" and _at_clients(node.type) and any(
        p not in (CLIENT, PURE) for p in arg_phases):
      # A structure of client and server values (a process's output, say):
      # only its fields are used, through selections that alias them.
      phases[j] = MIXED
    elif _at_clients(node.type):
      if any(p in (POST, AGGREGATE) for p in arg_phases):
        raise stage_error(j, "client work uses a value computed from this round's "
                             "aggregates")
      if MIXED in arg_phases:
        raise stage_error(j, "a structure of client and server values is used whole")
      phases[j] = CLIENT
    elif MIXED in arg_phases:
      raise stage_error(j, "a structure of client and server values is used whole")
    elif _placed(node.type):
      phases[j] = POST if any(p in (POST, AGGREGATE) for p in arg_phases) else PRE
    else:
      if any(p not in (PURE, None) for p in arg_phases):
        phases[j] = POST if any(p in (POST, AGGREGATE) for p in arg_phases) else PRE
      else:
        phases[j] = PURE
  if phases[alias[graph.result]] == CLIENT or _at_clients(graph.result_type):
    raise stage_error(graph.result, "it returns client-placed values; a deployed round "
                                    "returns server values only")

  client_params = [p for p, i in enumerate(graph.params) if phases[i] == CLIENT]
  broadcasts = [j for j, n in enumerate(nodes)
                if alias[j] == j and n.op == "intrinsic" and n.attrs.get("name") ==
                "federated_broadcast"]
  aggregations = [j for j, n in enumerate(nodes)
                  if alias[j] == j and phases[j] == AGGREGATE]
  outputs: list = []
  for j in aggregations:
    for a in nodes[j].args:
      a = alias[a]
      if phases[a] == CLIENT and a not in outputs:
        outputs.append(a)
  client_graph, used = _client_graph(graph, phases, alias, client_params, broadcasts, outputs,
                                     stage_error)
  return RoundSplit(graph, phases, alias, client_params, broadcasts, aggregations, outputs,
                    used, client_graph)


def _client_graph(graph, phases, alias, client_params, broadcasts, outputs, stage_error):
  """The client program (parameters: the client parameters, then one per
  broadcast it uses; the CLIENT and PURE nodes the outputs need; a structure
  of the outputs as its result) and the broadcast nodes it takes."""
  nodes = graph.nodes
  needed, todo = set(), list(outputs)
  while todo:
    j = alias[todo.pop()]
    if j in needed:
      continue
    needed.add(j)
    if phases[j] == PRE and nodes[j].op != "param":
      raise stage_error(j, "client work needs a server value that is not broadcast")
    if nodes[j].op == "intrinsic" and nodes[j].attrs.get("name") == "federated_broadcast":
      continue  # a parameter of the client program
    if nodes[j].op != "param":
      todo.extend(nodes[j].args)
  new_nodes: list[Node] = []
  where: dict[int, int] = {}
  used = []
  params, names = [], []
  for k, p in enumerate(client_params):
    i = graph.params[p]
    where[i] = len(new_nodes)
    params.append(len(new_nodes))
    names.append(graph.param_names[p] if p < len(graph.param_names) else f"client_{k}")
    new_nodes.append(Node("param", (), nodes[i].type, {"index": len(params) - 1}))
  for j in broadcasts:
    if j not in needed:
      continue
    where[j] = len(new_nodes)
    used.append(j)
    params.append(len(new_nodes))
    names.append(f"broadcast_{len(used) - 1}")
    new_nodes.append(Node("param", (), nodes[j].type, {"index": len(params) - 1}))
  for j in sorted(needed):
    if j in where:
      continue
    node = nodes[j]
    if node.op == "param":
      raise stage_error(j, "client work needs a server parameter that is not broadcast")
    where[j] = len(new_nodes)
    new_nodes.append(Node(node.op, tuple(where[alias[a]] for a in node.args), node.type,
                          dict(node.attrs)))
  result_fields = [where[j] for j in outputs]
  result_type = StructType([(None, nodes[j].type) for j in outputs])
  new_nodes.append(Node("struct", tuple(result_fields), result_type, {}))
  return Graph(new_nodes, params, len(new_nodes) - 1, names), used
