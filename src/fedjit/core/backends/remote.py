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

import jax
import jax.numpy as jnp
import numpy as np

from fedjit.core._computations import FederatedComputation, executing
from fedjit.core._placements import CLIENTS
from fedjit.core._types import FederatedType
from fedjit.core._types import tensor_types
from fedjit.core.backends.common import bound_message, range_message, rebuild, tensor_leaves_of
from fedjit.core.backends.reference import ReferenceOps, from_reference, to_reference
from fedjit.core.compiler.distribute import AGGREGATE, CLIENT, POST, PRE, PURE, split_round

__all__ = ["DistributedRound", "RoundTask", "RunningAggregate"]


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
      reports: a `RunningAggregate` of the clients' outputs (see
        `aggregate`), or one entry per reporting client: the list of its
        client program's outputs (what `run_client` returns).

    Returns:
      The computation's result (as `computation(...)` returns it).
    """
    g, split = self.computation.graph, self.split
    if isinstance(reports, RunningAggregate):
      running = reports
    else:
      running = self.aggregate(task)
      for r in reports:
        running.add(r)
    if running.count == 0:
      raise ValueError("A round needs at least one client's report to aggregate.")
    values = list(task._values)
    for j in split.aggregations:
      values[j] = running.result(j)
    with executing():
      self._run(values, ReferenceOps(running.count), (POST, PURE))
    return from_reference(g.result_type, values[split.alias[g.result]])

  def aggregate(self, task: RoundTask) -> "RunningAggregate":
    """A running aggregate for this round: `add` each client's outputs as
    they arrive (the server keeps sums, not reports), then pass it to
    `finish`.

    Example:
      >>> running = plan.aggregate(task)
      >>> for outputs in arriving_reports:
      ...   running.add(outputs)
      >>> result = plan.finish(task, running)
    """
    return RunningAggregate(self, task)

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


class RunningAggregate:
  """The aggregations of one deployed round, updated client by client.

  Sums, means (weighted and not), minima, maxima and the secure sums keep
  one running value per tensor, so memory does not grow with the cohort;
  `federated_aggregate` folds each client into its accumulator (TFF's
  semantics, merged once); `federated_collect` keeps every client's value,
  as its type says it must. The arithmetic is the reference backend's, in
  the same order, so the result equals the simulation's on the same
  clients. A secure sum checks each client's value against its bound when
  it is added.

  Example:
    >>> running = plan.aggregate(task)
    >>> running.add(outputs)           # one client's client-program outputs
    >>> running.count
    1
  """

  def __init__(self, plan: DistributedRound, task: RoundTask):
    self._plan, self._task = plan, task
    self.count = 0
    self._state: dict = {}

  def _client_args(self, j: int) -> list:
    split = self._plan.split
    node = split.graph.nodes[j]
    out = []
    for a in node.args:
      a = split.alias[a]
      out.append(("client", split.client_outputs.index(a)) if split.phases[a] == CLIENT
                 else ("server", self._task._values[a]))
    return out

  def add(self, outputs: list) -> None:
    """Adds one client's outputs (the list `run_client` returns).

    Raises:
      FederatedTypeError: an output does not have its type.
      ValueError: a secure-sum value is out of its bound.
    """
    plan = self._plan
    g, split = plan.computation.graph, plan.split
    if len(outputs) != len(split.client_outputs):
      raise ValueError(f"A report holds {len(split.client_outputs)} values, got "
                       f"{len(outputs)}.")
    members = []
    for k, j in enumerate(split.client_outputs):
      t = g.nodes[j].type
      members.append(to_reference(FederatedType(t.member, CLIENTS), [outputs[k]],
                                  f"the client's output {k} ({t.member})")[0])
    i, new = self.count, {}
    for j in split.aggregations:
      node = g.nodes[j]
      args = [members[v] if kind == "client" else v for kind, v in self._client_args(j)]
      new[j] = _fold(node, self._state.get(j), args, i)
    # All or nothing: a value refused by any aggregation changes none of them.
    self._state.update(new)
    self.count += 1

  def result(self, j: int) -> Any:
    """The aggregate of node `j` (reference representation)."""
    node = self._plan.split.graph.nodes[j]
    return _report(node, self._state[j], self.count)


@dataclasses.dataclass
class _Mean:
  """A running mean: the (weighted) total, and the weights' total (None
  when unweighted: the count divides)."""
  total: Any
  weights: Any


def _tree_map(fn, *trees):
  return jax.tree_util.tree_map(fn, *trees)


def _fold(node, state, args, client: int):
  """One client's value folded into aggregation `node`'s running state."""
  from fedjit.core.backends.reference import _run_python
  name = node.attrs["name"]
  v = args[0]
  if name == "federated_sum":
    x = _tree_map(np.asarray, v)
    return x if state is None else _tree_map(np.add, state, x)
  if name == "federated_mean":
    if len(args) == 1:
      x = _tree_map(np.asarray, v)
      return _Mean(x if state is None else _tree_map(np.add, state.total, x), None)
    w = args[1]
    wx = _tree_map(lambda x: np.asarray(w, np.asarray(x).dtype) * np.asarray(x), v)
    ws = _tree_map(lambda x: np.asarray(w, np.asarray(x).dtype), v)
    if state is None:
      return _Mean(wx, ws)
    return _Mean(_tree_map(np.add, state.total, wx), _tree_map(np.add, state.weights, ws))
  if name in ("federated_min", "federated_max"):
    op = np.minimum if name == "federated_min" else np.maximum
    x = _tree_map(np.asarray, v)
    return x if state is None else _tree_map(op, state, x)
  if name == "federated_collect":
    return (state or []) + [v]
  if name == "federated_aggregate":
    acc = args[1] if state is None else state
    return _run_python(node.attrs["accumulate"], (acc, v), client)
  # the secure sums: per tensor, checked against its bound
  member = node.type.member
  leaves = tensor_leaves_of(member, v)
  bounds = list(args[1])
  totals = list(state) if state is not None else [None] * len(leaves)
  for k, (b, x) in enumerate(zip(bounds, leaves)):
    b, x = int(np.asarray(b).reshape(())), np.asarray(x)
    if name == "federated_secure_modular_sum":
      if b < 1:
        raise ValueError(bound_message(name, "modulus", b))
      totals[k] = ((0 if totals[k] is None else totals[k]) + np.mod(x.astype(np.int64), b)) % b
      continue
    if name == "federated_secure_sum_bitwidth":
      if not 0 <= b <= 62:
        raise ValueError(bound_message(name, "bitwidth", b))
      limit, what = 2 ** b - 1, f"2**bitwidth - 1 = {2 ** b - 1} (bitwidth {b})"
    else:
      limit, what = b, f"max_input {b}"
    bad = (x.astype(np.int64) < 0) | (x.astype(np.int64) > limit)
    if bad.any():
      raise ValueError(range_message(name, client, int(x.reshape(-1)[np.argmax(bad.reshape(-1))]),
                                     what))
    totals[k] = x if totals[k] is None else np.add(totals[k], x)
  return totals


def _report(node, state, n: int):
  """The aggregate from the running state of `n` clients."""
  from fedjit.core.backends.reference import _run_python
  name = node.attrs["name"]
  if name == "federated_sum":
    return _tree_map(jnp.asarray, state)
  if name == "federated_mean":
    if state.weights is None:
      return _tree_map(lambda t: jnp.asarray(t / t.dtype.type(n), t.dtype), state.total)
    return _tree_map(lambda t, w: jnp.asarray(t / w, t.dtype), state.total, state.weights)
  if name in ("federated_min", "federated_max"):
    return _tree_map(jnp.asarray, state)
  if name == "federated_collect":
    return _tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *state)
  if name == "federated_aggregate":
    return _run_python(node.attrs["report"], state, None)
  member = node.type.member
  return rebuild(member, [jnp.asarray(np.asarray(t).astype(lt.dtype))
                          for t, lt in zip(state, tensor_types(member))])
