"""Which values flow from CLIENTS to the SERVER in a federated graph, in what
form (only an aggregate, an order statistic, or individual values), and which
differential-privacy noise protects them.

An analysis of the IR alone (no backend): every intrinsic whose input is
placed at CLIENTS and whose result is at the SERVER is a flow. A jax
computation marked with `DPNoise` (see `mark_dp_noise`) adds noise: on the
clients before a flow (local or distributed DP) or on the server after one
(central DP); the analysis links each such step to the flows it protects by
data dependence. The `privacy_report` of `fedjit.core` is built on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fedjit.core._ir import Graph
from fedjit.core._placements import CLIENTS, SERVER
from fedjit.core._types import FederatedType, Type

__all__ = ["DPNoise", "NoiseStep", "Flow", "client_to_server_flows", "mark_dp_noise", "REVEALS"]

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
class DPNoise:
  """What a noise-adding jax computation adds, for the privacy analysis.

  `mechanism`: "gaussian", "skellam", "discrete_gaussian", ...;
  `noise_multiplier`: the noise's standard deviation over the ℓ2 bound of
  one client's contribution; `clip`: that bound (None when it adapts
  from round to round); `source`: the aggregator that adds it;
  `accountant`: an object with `epsilon(rounds)` and `delta` (such as a
  `fedjit.aggregators.PrivacyAccountant`), or None; `output`: which element
  of the computation's result is the noised value when the result is a
  structure that also holds other things (None: all of it).

  Example:
    >>> DPNoise("gaussian", noise_multiplier=1.0, clip=0.5,
    ...         source="DifferentiallyPrivateFactory.gaussian_fixed")
  """
  mechanism: str
  noise_multiplier: float
  clip: float | None = None
  source: str = ""
  accountant: Any = dataclasses.field(default=None, compare=False)
  output: int | None = None

  def describe(self) -> str:
    """One line: mechanism, multiplier, bound and accountant.

    Example:
      >>> DPNoise("gaussian", 1.0, 0.5).describe()
      'gaussian noise, noise multiplier 1, clip 0.5'
    """
    clip = "adaptive clip" if self.clip is None else f"clip {self.clip:g}"
    text = f"{self.mechanism} noise, noise multiplier {self.noise_multiplier:g}, {clip}"
    if self.source:
      text += f" ({self.source})"
    if self.accountant is not None:
      text += f", ε accounted (δ = {getattr(self.accountant, 'delta', '?')})"
    return text


def mark_dp_noise(computation: Any, noise: DPNoise) -> Any:
  """Marks `computation` (a jax computation) as adding the DP noise `noise`;
  `privacy_report` then shows it on the flows it protects. Returns
  `computation`.

  Raises:
    TypeError: `noise` is not a `DPNoise`, or `computation` is not a jax
      computation.

  Example:
    >>> @fedjit.jax_computation(SUM_TYPE, KEY)
    ... def add_noise(total, key): ...
    >>> fedjit.core.mark_dp_noise(add_noise, fedjit.core.DPNoise("gaussian", 1.0, 0.5))
  """
  if not isinstance(noise, DPNoise):
    raise TypeError(f"mark_dp_noise expects a fedjit.core.DPNoise, got {noise!r}.")
  if not hasattr(computation, "concretize") or not hasattr(computation, "dp_noise"):
    raise TypeError(f"mark_dp_noise marks a fedjit.jax_computation, got "
                    f"{type(computation).__name__}.")
  computation.dp_noise = noise
  return computation


@dataclasses.dataclass(frozen=True)
class NoiseStep:
  """DP noise added in a graph: the `DPNoise`, where (`placement`, CLIENTS
  for local or distributed DP, SERVER for central DP) and its `node`."""
  noise: DPNoise
  placement: Any
  node: int

  @property
  def where(self) -> str:
    return "on each client" if self.placement == CLIENTS else "at the server"


@dataclasses.dataclass(frozen=True)
class Flow:
  """One flow of client values to the server.

  `intrinsic`: the intrinsic's name; `node`: its index in the graph;
  `client_type`: the `{T}@CLIENTS` value it takes (for a weighted mean, of
  the values); `server_type`: what reaches the server; `reveals`:
  "aggregate", "individual values", ...; `secure`: whether a secure sum
  carries it (the server learns only the sum); `noise`: the DP noise steps
  that protect it (before it on the clients, or after it at the server).
  """
  intrinsic: str
  node: int
  client_type: Type
  server_type: Type
  reveals: str
  secure: bool
  noise: tuple = ()

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
  if not flows:
    return flows
  steps = noise_steps(graph)
  out = []
  for flow in flows:
    before, after = _ancestors(graph, flow.node, steps), _descendants(graph, flow.node)
    protecting = tuple(s for s in steps if (s.node in before if s.placement == CLIENTS
                                            else s.node in after))
    out.append(dataclasses.replace(flow, noise=protecting))
  return out


def noise_steps(graph: Graph) -> list[NoiseStep]:
  """Every step of `graph` that applies a `mark_dp_noise`-marked computation.

  Example:
    >>> [s.where for s in noise_steps(dp_fed_avg.next.graph)]
    ['at the server']
  """
  steps = []
  for j, node in enumerate(graph.nodes):
    noise = getattr(node.attrs.get("fn"), "dp_noise", None)
    if noise is None:
      continue
    placement = node.type.placement if isinstance(node.type, FederatedType) else SERVER
    steps.append(NoiseStep(noise, placement, j))
  return steps


def _inputs(graph: Graph, k: int) -> tuple[int, ...]:
  """What node `k` really depends on. A selection of a structure's field
  (through any `federated_zip` of it) depends on that field only, so data
  that merely travels beside a value in a structure is not mistaken for
  an input of it."""
  node = graph.nodes[k]
  if node.op != "select":
    return node.args
  source = node.args[0]
  index = node.attrs.get("index")
  while True:
    inner = graph.nodes[source]
    if inner.op == "intrinsic" and inner.attrs.get("name") == "federated_zip" and inner.args:
      inner = graph.nodes[inner.args[0]]
    if inner.op != "struct" or not isinstance(index, int) or index >= len(inner.args):
      return (source,)
    field = graph.nodes[inner.args[index]]
    if field.op != "select":
      return (inner.args[index],)
    source, index = field.args[0], field.attrs.get("index")


def _ancestors(graph: Graph, j: int, steps: list[NoiseStep]) -> set[int]:
  """The nodes `j` depends on. A selection of an element of a noise step's
  result other than its noised `output` does not depend on the noise."""
  outputs = {s.node: s.noise.output for s in steps if s.noise.output is not None}
  seen, todo = set(), [j]
  while todo:
    k = todo.pop()
    node = graph.nodes[k]
    for a in _inputs(graph, k):
      if a in outputs and node.op == "select" and node.attrs.get("index") != outputs[a]:
        continue
      if a not in seen:
        seen.add(a)
        todo.append(a)
  return seen


def _descendants(graph: Graph, j: int) -> set[int]:
  reached = {j}
  for k in range(j + 1, len(graph.nodes)):  # nodes are in topological order
    if any(a in reached for a in _inputs(graph, k)):
      reached.add(k)
  reached.discard(j)
  return reached
