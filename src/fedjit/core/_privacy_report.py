"""`privacy_report`: what a federated computation lets the server see of the
clients' values, read from its traced graph (see `compiler/flows.py`)."""

from __future__ import annotations

from typing import Any

from fedjit.core._computations import FederatedComputation
from fedjit.core._placements import SERVER
from fedjit.core.compiler.flows import (DPNoise, Flow, client_to_server_flows, mark_dp_noise,
                                        noise_steps)

__all__ = ["PrivacyReport", "privacy_report", "DPNoise", "mark_dp_noise"]


class PrivacyReport:
  """The CLIENTS -> SERVER flows of a computation (`flows`, a list of
  `compiler.flows.Flow`: intrinsic, client and server types, what the
  server learns, whether a secure sum carries it, which DP noise protects
  it).

  Example:
    >>> report = fedjit.privacy_report(trainer)
    >>> report.reveals_individual_values
    False
    >>> print(report)
    LearningProcess.next: 2 flow(s) from CLIENTS to SERVER
      federated_sum  {<loss=...>}@CLIENTS -> <loss=...>@SERVER  aggregate
      federated_mean  {<trainable=...>}@CLIENTS -> <trainable=...>@SERVER  aggregate
  """

  def __init__(self, name: str, flows: "list[Flow]", noise_steps: "list | None" = None):
    self.name = name
    self.flows = list(flows)
    self.noise_steps = list(noise_steps or [])

  @property
  def reveals_individual_values(self) -> bool:
    """True if any flow shows the server single clients' values
    (`federated_collect`, or the order statistics `federated_min`/`max`)."""
    return any(f.individual for f in self.flows)

  def check(self) -> "PrivacyReport":
    """Raises if the flows contradict each other. Returns the report otherwise.

    Two compositions contradict themselves: a secure sum (the server may
    learn only the sum) beside a flow that shows the server individual
    client values (`federated_collect`, as robust aggregators use), which
    would defeat it; and DP noise added at the server after a flow that
    showed the server individual values, which then protects nothing.

    Raises:
      ValueError: naming the flows and what to change.

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
    for flow in revealing:
      late = [s for s in flow.noise if s.placement == SERVER]
      if late:
        raise ValueError(
            f"{self.name} adds DP noise at the server ({late[0].noise.describe()}) after "
            f"{flow.intrinsic} has shown the server individual client values "
            f"({flow.client_type}): the server saw them before the noise, so it protects "
            f"nothing. Aggregate with a sum or mean before the central noise (for "
            f"DifferentiallyPrivateFactory, keep record_aggregation_factory a SumFactory), "
            f"or add the noise on each client before the robust aggregator "
            f"(DifferentiallyPrivateFactory.local_gaussian).")
    return self

  def __str__(self) -> str:
    lines = [f"{self.name}: {len(self.flows)} flow(s) from CLIENTS to SERVER"]
    for f in self.flows:
      secure = ", secure sum" if f.secure else ""
      lines.append(f"  {f.intrinsic}  {f.client_type} -> {f.server_type}  {f.reveals}{secure}")
      for step in f.noise:
        lines.append(f"    DP: {step.noise.describe()}, added {step.where}")
    return "\n".join(lines)

  def epsilon(self, rounds: int) -> "dict[str, float]":
    """ε after `rounds` rounds from each accountant of the DP noise in the
    report, by the noise's source (what a data owner reviews before a run).

    Example:
      >>> fedjit.privacy_report(dp_fed_avg).epsilon(100)
      {'DifferentiallyPrivateFactory.gaussian_adaptive': 1.93...}
    """
    out = {}
    for step in self.noise_steps:
      accountant = step.noise.accountant
      if accountant is not None:
        out[step.noise.source or step.noise.mechanism] = float(accountant.epsilon(rounds))
    return out

  __repr__ = __str__


def privacy_report(computation: Any) -> PrivacyReport:
  """What `computation` lets the server see of the clients' values.

  Walks the traced graph and lists every flow of values from CLIENTS to
  the SERVER: its intrinsic, the clients' type and the server's, whether
  the server learns only an aggregate (a sum or mean), an order statistic
  or individual values (`federated_collect`, which robust aggregators
  use), whether a secure sum carries it, and which differential-privacy
  noise protects it (noise the fedjit DP aggregators add, marked with
  `fedjit.core.mark_dp_noise`: on each client before the flow, or at the
  server after it, with its mechanism, multiplier, clip and accountant). A
  process (anything with a `next` computation, e.g. a `LearningProcess`) is
  reported by its `next`.

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
  return PrivacyReport(name, client_to_server_flows(comp.graph), noise_steps(comp.graph))
