"""Simulated deployment: the production round state machine and store, run
in-process against simulated clients on a virtual clock, so that dropouts,
stragglers and deadlines can be studied with the server's own code at
thousands of clients in seconds.

Which clients check in, when, who drops out and who is too late is decided
by an `Availability` model and the `RoundStateMachine`; what a committed
round computes is the process's own compiled round on the clients whose
reports arrived in time (`process.next(state, population.cohort(reported))`),
which is what the server's running aggregate of those reports equals.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from typing import Any

import numpy as np

from fedjit.deploy._rounds import Phase, RoundConfig, RoundStateMachine
from fedjit.deploy._store import ServerStore

__all__ = ["Availability", "simulate_deployment"]


@dataclasses.dataclass(frozen=True)
class Availability:
  """When simulated clients come and how they fail.

  Args:
    dropout: probability that a selected client never reports (it goes
      offline, its battery dies, ...).
    latency_median: median seconds from selection to report (training and
      upload); latencies are log-normal.
    latency_sigma: the log-normal's σ (0: every client takes the median).
    checkin_interval: mean seconds between one client's check-ins when it
      is available (so N clients check in at about N / interval per second).
    diurnal_amplitude: in [0, 1): a client's availability follows
      (1 + A·sin(2π (t / day + φ))) / (1 + A) with its own phase φ (time
      zones); 0 is always available.
    day_seconds: the length of a day on the virtual clock.

  Example:
    >>> Availability(dropout=0.2, latency_median=40, latency_sigma=0.8,
    ...              diurnal_amplitude=0.5)
  """
  dropout: float = 0.1
  latency_median: float = 30.0
  latency_sigma: float = 0.5
  checkin_interval: float = 600.0
  diurnal_amplitude: float = 0.0
  day_seconds: float = 86400.0

  def __post_init__(self):
    def number(name, low, high=math.inf, low_open=False):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (
          v < low or v >= high or (low_open and v == low)):
        raise ValueError(f"Availability expects {name} in {'(' if low_open else '['}{low}, "
                         f"{high}), got {v!r}.")
    number("dropout", 0, 1)
    number("latency_median", 0, low_open=True)
    number("latency_sigma", 0)
    number("checkin_interval", 0, low_open=True)
    number("diurnal_amplitude", 0, 1)
    number("day_seconds", 0, low_open=True)


class _Reports:
  """The accumulator of a simulated round: the ids of the clients that reported."""

  def __init__(self, round_number: int):
    self.clients: list = []

  def add(self, client: Any) -> None:
    self.clients.append(client)


def _metrics(tree: Any, prefix: str = "") -> dict:
  """A process's metrics as a flat dict of floats ("train/loss": 0.3)."""
  out = {}
  items = tree.items() if hasattr(tree, "items") else (
      enumerate(tree) if isinstance(tree, (list, tuple)) else None)
  if items is None:
    try:
      value = float(np.asarray(tree))
    except (TypeError, ValueError):
      return out
    return {prefix.rstrip("/"): value if math.isfinite(value) else None}
  for k, v in items:
    out.update(_metrics(v, f"{prefix}{k}/"))
  return out


def simulate_deployment(process: Any, client_data: Any, rounds: int, *,
                        config: RoundConfig, availability: Availability = Availability(),
                        seed: int = 0, store_path: str | os.PathLike | None = None,
                        max_attempts: int | None = None) -> list[dict]:
  """Runs `rounds` committed rounds of `process` through the deployment
  server's round state machine against simulated clients (see the module
  docstring).

  Args:
    process: a learning process (e.g. `build_weighted_fed_avg(...)`).
    client_data: a `ClientData`, a mapping `{client_id: dataset}` or a list
      of datasets (as `fedjit.simulation.Population` takes).
    rounds: how many rounds to commit.
    config: the server's `RoundConfig`.
    availability: the clients' `Availability`.
    seed: the simulation's seed (who checks in, drops out, how long they take).
    store_path: the server database; an existing one is resumed after its
      last committed round. Default: a temporary file.
    max_attempts: give up after this many attempts, committed or abandoned
      (default 10 · rounds).

  Returns:
    One dict per attempt: `round`, `status` ("committed" or "abandoned"),
    `start` and `end` (virtual seconds), `selected`, `reports`, `dropped`,
    and for committed rounds the process's `metrics` (flattened), the
    `clients` whose reports made it (in arrival order) and `state` (the
    process state after it); for abandoned ones `why`.

  Raises:
    RuntimeError: `max_attempts` attempts did not commit `rounds` rounds
      (the error says how many committed, and why the others were abandoned).

  Example:
    >>> history = fedjit.deploy.simulate_deployment(
    ...     trainer, train, rounds=5,
    ...     config=fedjit.deploy.RoundConfig(goal_count=100, min_reports=80,
    ...                                      reporting_deadline=120),
    ...     availability=fedjit.deploy.Availability(dropout=0.2, latency_median=60))
    >>> [(h["status"], h["reports"]) for h in history]
  """
  from fedjit.learning import load_checkpoint, save_checkpoint
  from fedjit.simulation import Population
  if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
    raise ValueError(f"simulate_deployment expects rounds to be an int >= 1, got {rounds!r}.")
  if not isinstance(config, RoundConfig):
    raise TypeError(f"simulate_deployment expects config to be a RoundConfig, got {config!r}.")
  if not isinstance(availability, Availability):
    raise TypeError(f"simulate_deployment expects availability to be an Availability, got "
                    f"{availability!r}.")
  population = Population(process, client_data)
  ids = population.client_ids
  if len(ids) < config.quorum:
    raise ValueError(f"The quorum is {config.quorum} reports but there are only {len(ids)} "
                     f"clients; lower min_reports or goal_count.")
  rng = np.random.default_rng(seed)
  phases = rng.uniform(0.0, 1.0, len(ids))
  max_attempts = 10 * rounds if max_attempts is None else max_attempts

  tmp = None
  if store_path is None:
    tmp = tempfile.TemporaryDirectory(prefix="fedjit-deploy-sim-")
    store_path = os.path.join(tmp.name, "server.db")
  scratch = tempfile.TemporaryDirectory(prefix="fedjit-deploy-sim-state-")
  state_file = os.path.join(scratch.name, "state.safetensors")
  template = process.initialize()

  def to_bytes(state) -> bytes:
    save_checkpoint(state_file, state)
    with open(state_file, "rb") as fh:
      return fh.read()

  def from_bytes(data: bytes):
    with open(state_file, "wb") as fh:
      fh.write(data)
    return load_checkpoint(state_file, template)

  live = {}

  def commit(round_number, reports, previous_state):
    state = live.get("state")
    if state is None:
      state = from_bytes(previous_state)
    out = process.next(state, population.cohort(reports.clients))
    live["state"], live["metrics"] = out.state, _metrics(out.metrics)
    live["clients"] = list(reports.clients)
    return to_bytes(out.state), live["metrics"]

  store = ServerStore(store_path, initial_state=to_bytes(template))
  try:
    machine = RoundStateMachine(config, store, _Reports, commit)
    now = 0.0
    committed, history = 0, []
    amplitude = availability.diurnal_amplitude
    for _ in range(max_attempts):
      if committed == rounds:
        break
      machine.tick(now)   # begins the next attempt
      round_number, start = machine.round, now
      pending, chosen = [], set()
      # Selection: merged check-ins of the available clients.
      t = now
      timeout = machine.started_at + config.selection_timeout
      while machine.phase == Phase.SELECTING and machine.round == round_number:
        weights = (1 + amplitude * np.sin(2 * np.pi * (t / availability.day_seconds + phases))
                   ) / (1 + amplitude)
        rate = weights.sum() / availability.checkin_interval
        t = t + rng.exponential(1.0 / rate)
        if t >= timeout:
          machine.tick(timeout)
          t = timeout
          break
        client = ids[rng.choice(len(ids), p=weights / weights.sum())]
        answer = machine.check_in(client, t)
        if answer.status == "selected" and client not in chosen:
          chosen.add(client)
          if rng.random() >= availability.dropout:
            latency = availability.latency_median * math.exp(
                availability.latency_sigma * rng.standard_normal())
            pending.append((t + latency, client))
      # Reporting: reports in time order; the machine drops the late ones.
      for at, client in sorted(pending, key=lambda p: p[0]):
        if machine.round != round_number or machine.phase not in (Phase.SELECTING,
                                                                  Phase.REPORTING):
          break
        machine.tick(at)
        machine.submit(client, round_number, client, at)
        t = max(t, at)
      if machine.round == round_number and machine.phase == Phase.REPORTING:
        t = max(t, machine.deadline)
        machine.tick(t)
      if machine.round == round_number and machine.phase == Phase.SELECTING:
        t = max(t, timeout)
        machine.tick(t)
      now = t
      if machine.round > round_number:
        committed += 1
        last = store.last_committed()
        history.append(dict(round=round_number, status="committed", start=start, end=now,
                            selected=last.summary["selected"], reports=last.summary["reports"],
                            dropped=last.summary["dropped"], metrics=live["metrics"],
                            clients=live["clients"], state=live["state"]))
      else:
        _, _, detail = store.events("abandon")[-1]
        history.append(dict(round=round_number, status="abandoned", start=start, end=now,
                            selected=detail["selected"], reports=detail["reports"],
                            dropped=detail["dropped"], why=detail["why"]))
    if committed < rounds:
      reasons = sorted({h["why"] for h in history if h["status"] == "abandoned"})[:3]
      raise RuntimeError(f"{committed} of {rounds} round(s) committed in {max_attempts} "
                         f"attempts; the others were abandoned: {'; '.join(reasons)}. Lower "
                         f"min_reports, raise the deadlines, or make clients more available.")
    return history
  finally:
    store.close()
    scratch.cleanup()
    if tmp is not None:
      tmp.cleanup()
