"""The server's side of a deployed round: `DistributedRound` runs a federated
computation with its client work done elsewhere.

`compiler/distribute.py` splits the graph; here the server evaluates the
part before the clients (`prepare`: what it broadcasts), and, given each
reporting client's outputs of the client program, the aggregations and the
rest (`finish`), with the reference backend's operations, so a deployed
round computes exactly what the simulation computes on the same clients.
The client program is an ordinary federated computation (run on a cohort of
one), serialized with `fedjit.serialize`: StableHLO and a JSON graph, no
Python from the server.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from fedjit.core._computations import FederatedComputation, executing
from fedjit.core._placements import CLIENTS
from fedjit.core._types import FederatedType
from fedjit.core.backends.reference import ReferenceOps, from_reference, to_reference
from fedjit.core.compiler.distribute import AGGREGATE, CLIENT, POST, PRE, PURE, split_round

__all__ = ["DistributedRound", "RoundTask"]


@dataclasses.dataclass
class RoundTask:
  """What `DistributedRound.prepare` computed: the `broadcasts` (Python
  values, one per client-program broadcast parameter, in order) and the
  server's intermediate values (kept for `finish`)."""
  broadcasts: list
  _values: list = dataclasses.field(repr=False, default_factory=list)


class DistributedRound:
  """A federated computation split for deployment (see the module docstring).

  Args:
    computation: a federated computation, or a process with a `next` one
      (its `next` is split).

  Raises:
    ValueError: the computation needs more than one round trip to the
      clients, or returns client values.

  Example:
    >>> plan = fedjit.core.DistributedRound(trainer)
    >>> task = plan.prepare([state])              # the non-client arguments
    >>> outputs = [plan.run_client([dataset], task.broadcasts) for dataset in cohort]
    >>> result = plan.finish(task, outputs)      # == trainer.next(state, cohort)
  """

  def __init__(self, computation: Any):
    comp = computation
    if not isinstance(comp, FederatedComputation) and isinstance(
        getattr(comp, "next", None), FederatedComputation):
      comp = comp.next
    if not isinstance(comp, FederatedComputation):
      raise TypeError(f"DistributedRound splits a federated computation (or a process with "
                      f"a `next` one), got {type(computation).__name__}.")
    self.computation = comp
    self.split = split_round(comp.graph, comp.name)
    self.client_program = FederatedComputation(self.split.client_graph, f"{comp.name}.client")
    self._bytes = None

  @property
  def server_param_types(self) -> list:
    """The types of `prepare`'s arguments: the computation's parameters
    that are not client values."""
    g = self.computation.graph
    return [g.nodes[i].type for p, i in enumerate(g.params) if p not in self.split.client_params]

  def serialized_client_program(self) -> bytes:
    """The client program as `fedjit.serialize` bytes (computed once)."""
    if self._bytes is None:
      from fedjit.core._serialization import serialize
      self._bytes = serialize(self.client_program)
    return self._bytes

  def client_program_hash(self) -> str:
    """The SHA-256 (hex) of the serialized client program: its name on the wire.

    Example:
      >>> plan.client_program_hash()
      '3f2a...'
    """
    return hashlib.sha256(self.serialized_client_program()).hexdigest()

  # ------------------------------------------------------------------ server

  def prepare(self, server_args: list) -> RoundTask:
    """Runs the server's work before the clients.

    Args:
      server_args: the computation's arguments that are not client values,
        in order (for a learning process's `next`: `[state]`).

    Returns:
      A `RoundTask`: the values to send to the clients, and what `finish`
      needs.
    """
    g, split = self.computation.graph, self.split
    types = self.server_param_types
    if len(server_args) != len(types):
      raise TypeError(f"{self.computation.name}'s server part takes {len(types)} argument(s) "
                      f"({', '.join(map(str, types))}), got {len(server_args)}.")
    values: list = [None] * len(g.nodes)
    server_params = [i for p, i in enumerate(g.params) if p not in split.client_params]
    for i, t, a in zip(server_params, types, server_args):
      values[i] = to_reference(t, a, f"argument {g.nodes[i].type}")
    with executing():
      self._run(values, ReferenceOps(None), (PRE, PURE))
    broadcasts = []
    for j in self.split.client_broadcasts:
      member = g.nodes[j].type.member
      broadcasts.append(from_reference(member, values[g.nodes[j].args[0]]))
    return RoundTask(broadcasts, values)

  def finish(self, task: RoundTask, reports: list) -> Any:
    """Aggregates the clients' reports and runs the server's work after them.

    Args:
      task: what `prepare` returned for this round.
      reports: one entry per reporting client: the list of its client
        program's outputs (what `run_client` returns).

    Returns:
      The computation's result (as `computation(...)` returns it).
    """
    g, split = self.computation.graph, self.split
    if not reports:
      raise ValueError("A round needs at least one client's report to aggregate.")
    values = list(task._values)
    for k, j in enumerate(split.client_outputs):
      t = g.nodes[j].type
      members = [r[k] for r in reports]
      values[j] = to_reference(FederatedType(t.member, CLIENTS), members,
                               f"the clients' output {k} ({t})")
    with executing():
      self._run(values, ReferenceOps(len(reports)), (AGGREGATE, POST, PURE))
    return from_reference(g.result_type, values[split.alias[g.result]])

  def _run(self, values: list, ops: ReferenceOps, phases: tuple) -> None:
    g, split = self.computation.graph, self.split
    for j, node in enumerate(g.nodes):
      if split.phases[j] not in phases or values[j] is not None or node.op == "param":
        continue
      if split.alias[j] != j:
        values[j] = values[split.alias[j]]
        continue
      args = [values[split.alias[a]] for a in node.args]
      if any(v is None for v, a in zip(args, node.args)
             if split.phases[split.alias[a]] == CLIENT and split.phases[j] != AGGREGATE):
        continue  # needs client values: runs on the clients
      if node.op == "constant":
        out = ops.constant(node)
      elif node.op == "struct":
        if any(v is None for v in args):
          continue   # a structure holding client values: only its fields are used here
        out = ops.struct(node, args)
      elif node.op == "select":
        source_type = g.nodes[node.args[0]].type
        if args[0] is None:
          continue
        out = ops.select(node, source_type, args[0])
      elif node.op == "call":
        out = ops.call(node, args[0] if args else None)
      else:
        out = getattr(ops, node.attrs["name"])(node, *args)
      values[j] = out

  # ------------------------------------------------------------------ client

  @staticmethod
  def run_client(program: Any, client_args: list, broadcasts: list) -> list:
    """Runs a client program (a `FederatedComputation`, e.g. deserialized)
    on one client: `client_args` are its client values (its dataset), and
    `broadcasts` what the server sent. Returns the list of its outputs.

    Example:
      >>> outputs = DistributedRound.run_client(fedjit.deserialize(blob), [dataset],
      ...                                        task.broadcasts)
    """
    out = program(*[[a] for a in client_args], *broadcasts)
    fields = out if isinstance(out, (list, tuple)) else list(out)
    types = list(program.type_signature.result.types())
    # A value all clients share comes back once; the others as one-client lists.
    return [f if getattr(t, "all_equal", False) else f[0] for f, t in zip(fields, types)]
