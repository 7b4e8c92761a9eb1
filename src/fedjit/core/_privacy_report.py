"""`privacy_report`: what a federated computation lets the server see of the
clients' values, read from its traced graph (see `compiler/flows.py`)."""

from __future__ import annotations

from typing import Any

from fedjit.core._computations import FederatedComputation
from fedjit.core.compiler.flows import Flow, client_to_server_flows

__all__ = ["PrivacyReport", "privacy_report"]


class PrivacyReport:
  """The CLIENTS -> SERVER flows of a computation (`flows`, a list of
  `compiler.flows.Flow`: intrinsic, client and server types, what the
  server learns, whether a secure sum carries it).

  Example:
    >>> report = fedjit.privacy_report(trainer)
    >>> report.reveals_individual_values
    False
    >>> print(report)
    LearningProcess.next: 2 flow(s) from CLIENTS to SERVER
      federated_sum  {<loss=...>}@CLIENTS -> <loss=...>@SERVER  aggregate
      federated_mean  {<trainable=...>}@CLIENTS -> <trainable=...>@SERVER  aggregate
  """

  def __init__(self, name: str, flows: "list[Flow]"):
    self.name = name
    self.flows = list(flows)

  @property
  def reveals_individual_values(self) -> bool:
    """True if any flow shows the server single clients' values
    (`federated_collect`, or the order statistics `federated_min`/`max`)."""
    return any(f.individual for f in self.flows)

  def check(self) -> "PrivacyReport":
    """Raises if the flows contradict each other: a secure sum (the server
    may learn only the sum) beside a flow that shows the server individual
    client values (`federated_collect`, as robust aggregators use), which
    would defeat it. Returns the report otherwise.

    Raises:
      ValueError: naming both flows.

    Example:
      >>> fedjit.privacy_report(trainer).check()   # raises if contradictory
    """
    secure = [f for f in self.flows if f.secure]
    revealing = [f for f in self.flows if f.individual]
    if secure and revealing:
      s, r = secure[0], revealing[0]
      raise ValueError(
          f"{self.name} sums {s.client_type} with {s.intrinsic} (secure aggregation: the "
          f"server may learn only the sum), but also sends {r.client_type} to the server "
          f"with {r.intrinsic}, which reveals {r.reveals}. The two contradict each other: "
          f"use a robust aggregator without secure aggregation, or secure aggregation "
          f"with an aggregate (a mean or sum) only.")
    return self

  def __str__(self) -> str:
    lines = [f"{self.name}: {len(self.flows)} flow(s) from CLIENTS to SERVER"]
    for f in self.flows:
      secure = ", secure sum" if f.secure else ""
      lines.append(f"  {f.intrinsic}  {f.client_type} -> {f.server_type}  {f.reveals}{secure}")
    return "\n".join(lines)

  __repr__ = __str__


def privacy_report(computation: Any) -> PrivacyReport:
  """What `computation` lets the server see of the clients' values.

  Walks the traced graph and lists every flow of values from CLIENTS to
  the SERVER: its intrinsic, the clients' type and the server's, whether
  the server learns only an aggregate (a sum or mean), an order statistic
  or individual values (`federated_collect`, which robust aggregators
  use), and whether a secure sum carries it. A process (anything with a
  `next` computation, e.g. a `LearningProcess`) is reported by its `next`.
  Not yet analysed: differential-privacy noise (the aggregators' own
  `PrivacyAccountant` reports ε).

  Raises:
    TypeError: `computation` is not a federated computation or a process.

  Example:
    >>> report = fedjit.privacy_report(trainer)      # build_weighted_fed_avg(...)
    >>> [(f.intrinsic, f.reveals) for f in report.flows]   # metrics, then the model update
    [('federated_sum', 'aggregate'), ('federated_mean', 'aggregate')]
  """
  comp = computation
  name = getattr(comp, "name", type(comp).__name__)
  if not isinstance(comp, FederatedComputation) and isinstance(
      getattr(comp, "next", None), FederatedComputation):
    name = f"{type(computation).__name__}.next"
    comp = comp.next
  if not isinstance(comp, FederatedComputation):
    raise TypeError(
        f"privacy_report reads a federated computation's graph: pass a "
        f"fedjit.federated_computation or a process with a `next` computation (such as "
        f"build_weighted_fed_avg(...)); got {type(computation).__name__}.")
  return PrivacyReport(name, client_to_server_flows(comp.graph))
