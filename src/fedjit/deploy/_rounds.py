"""The server's round state machine, after Bonawitz et al. 2019 ("Towards
Federated Learning at Scale"): select, collect reports, commit or abandon.

A round begins SELECTING: clients that check in are selected until
`ceil(goal_count · over_selection)` are (then it moves on at once) or
`selection_timeout` passes (then it moves on if at least `min_reports` were
selected, else it is abandoned). While REPORTING, validated updates are
added to the round's accumulator as they arrive (running sums: the server's
memory does not grow with the cohort). The round commits as soon as
`goal_count` reports are in, or at the reporting deadline if at least
`min_reports` are; otherwise it is abandoned and the same round number
starts again. Reports after a commit, from clients that were not selected,
twice from one client, or for another round are refused without touching
the accumulator; an update that fails validation is a strike against its
client, and a client with `max_strikes` strikes is refused from then on.

Time is passed in (`now`, seconds), never read, so the same machine runs
against real clients and against simulated ones on a virtual clock. A
commit is written to the `ServerStore` in one transaction before the
machine moves on, so a server that crashes resumes from its last committed
round (the round in progress is lost, and its clients' late reports are
refused as being for another round).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, Callable, Protocol

from fedjit.deploy._store import ServerStore
from fedjit.deploy._wire import UpdateRejected

__all__ = ["RoundConfig", "Phase", "RoundStateMachine", "CheckIn", "Accumulator"]


class Phase(enum.Enum):
  """Where a round is."""
  SELECTING = "selecting"
  REPORTING = "reporting"
  COMMITTED = "committed"
  ABANDONED = "abandoned"


@dataclasses.dataclass(frozen=True)
class RoundConfig:
  """How a round selects and waits.

  Args:
    goal_count: the reports a round wants.
    over_selection: clients selected per wanted report (Bonawitz et al.:
      1.3, to absorb dropouts).
    min_reports: the fewest reports a round may commit with (default
      `goal_count`).
    selection_timeout: seconds a round waits for check-ins.
    reporting_deadline: seconds after selection closes that reports are
      accepted.
    max_strikes: rejected updates after which a client is refused.

  Example:
    >>> RoundConfig(goal_count=100, min_reports=80, reporting_deadline=600).selection_count
    130
  """
  goal_count: int
  over_selection: float = 1.3
  min_reports: int | None = None
  selection_timeout: float = 60.0
  reporting_deadline: float = 300.0
  max_strikes: int = 3

  def __post_init__(self):
    def integer(name, value, low):
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"RoundConfig expects {name} to be an int >= {low}, got {value!r}.")
    integer("goal_count", self.goal_count, 1)
    integer("max_strikes", self.max_strikes, 1)
    if self.min_reports is not None:
      integer("min_reports", self.min_reports, 1)
      if self.min_reports > self.goal_count:
        raise ValueError(f"RoundConfig expects min_reports <= goal_count ({self.goal_count}), "
                         f"got {self.min_reports}.")
    for name in ("over_selection", "selection_timeout", "reporting_deadline"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
          value) or value <= 0:
        raise ValueError(f"RoundConfig expects {name} to be a positive number, got {value!r}.")
    if self.over_selection < 1:
      raise ValueError(f"RoundConfig expects over_selection >= 1 (select at least the goal), "
                       f"got {self.over_selection}.")

  @property
  def selection_count(self) -> int:
    """How many clients a round selects: ceil(goal_count · over_selection)."""
    return math.ceil(self.goal_count * self.over_selection - 1e-9)

  @property
  def quorum(self) -> int:
    """The fewest reports a round commits with."""
    return self.goal_count if self.min_reports is None else self.min_reports


class Accumulator(Protocol):
  """A round's running aggregate: `add(update)` as each report arrives."""

  def add(self, update: Any) -> None:
    ...


@dataclasses.dataclass(frozen=True)
class CheckIn:
  """The answer to a client's check-in: `status` "selected" (work on
  `round`), "wait" (come back after `retry_after` seconds) or "refused"."""
  status: str
  round: int | None = None
  retry_after: float | None = None


class RoundStateMachine:
  """Runs rounds (see the module docstring).

  Args:
    config: a `RoundConfig`.
    store: the server's `ServerStore`; the machine resumes after its last
      committed round.
    new_accumulator: `round_number -> Accumulator` for each round.
    commit: `(round_number, accumulator, previous_state_bytes) ->
      (state_bytes, metrics_dict)`: the process state after the round.
    validate: `(client, update) -> update`, raising `UpdateRejected` for a
      bad one (e.g. `ValueDecoder`'s checks). Default: no check.

  Example:
    >>> machine = RoundStateMachine(RoundConfig(goal_count=10), store, new_acc, commit)
    >>> machine.check_in("client-key-id", now=0.0)
    CheckIn(status='selected', round=1, retry_after=None)
    >>> machine.submit("client-key-id", 1, update, now=12.5)
    'accepted'
    >>> machine.tick(now=400.0)          # deadlines
  """

  def __init__(self, config: RoundConfig, store: ServerStore,
               new_accumulator: Callable[[int], Accumulator],
               commit: Callable[[int, Accumulator, bytes], tuple[bytes, dict]],
               validate: Callable[[str, Any], Any] | None = None):
    if not isinstance(config, RoundConfig):
      raise TypeError(f"RoundStateMachine expects a RoundConfig, got {config!r}.")
    if not isinstance(store, ServerStore):
      raise TypeError(f"RoundStateMachine expects a ServerStore, got {store!r}.")
    self.config, self.store = config, store
    self._new_accumulator, self._commit = new_accumulator, commit
    self._validate = validate or (lambda client, update: update)
    self.round: int = store.last_committed().number + 1
    self.phase: Phase | None = None
    self._started = self._deadline = 0.0
    self._selected: set[str] = set()
    self._reported: dict[str, None] = {}
    self._rejected = 0
    self._accumulator: Any = None

  @property
  def started_at(self) -> float:
    """When the current attempt began (its selection timeout counts from it)."""
    return self._started

  @property
  def deadline(self) -> float | None:
    """The reporting deadline of the current round (None before selection closes)."""
    return self._deadline if self.phase == Phase.REPORTING else None

  def is_selected(self, client: str, round_number: int) -> bool:
    """Whether `client` is selected in the running attempt of `round_number`."""
    return (round_number == self.round and self.phase in (Phase.SELECTING, Phase.REPORTING)
            and client in self._selected)

  @property
  def accumulator(self) -> Any:
    """The running round's accumulator (None between rounds)."""
    return self._accumulator

  # ------------------------------------------------------------- transitions

  def _begin(self, now: float) -> None:
    self.phase = Phase.SELECTING
    self._started = now
    self._selected, self._reported, self._rejected = set(), {}, 0
    self._accumulator = self._new_accumulator(self.round)

  def _close_selection(self, now: float) -> None:
    self.phase = Phase.REPORTING
    self._deadline = now + self.config.reporting_deadline

  def _summary(self, now: float) -> dict:
    return {"selected": len(self._selected), "reports": len(self._reported),
            "reporters": list(self._reported),
            "dropped": len(self._selected) - len(self._reported), "rejected": self._rejected,
            "seconds": now - self._started}

  def _finish_commit(self, now: float) -> None:
    previous = self.store.last_committed()
    state, metrics = self._commit(self.round, self._accumulator, previous.state)
    summary = dict(self._summary(now), metrics=metrics)
    self.store.commit_round(self.round, state, summary)
    self.phase = Phase.COMMITTED
    self.round += 1
    self._accumulator = None

  def _abandon(self, now: float, why: str) -> None:
    self.store.record_event(self.round, "abandon", dict(self._summary(now), why=why))
    self.phase = Phase.ABANDONED
    self._accumulator = None

  def tick(self, now: float) -> Phase | None:
    """Applies the timeouts at time `now`, starting a round when none is
    running; returns the phase afterwards.

    Example:
      >>> machine.tick(now=clock())
      <Phase.SELECTING: 'selecting'>
    """
    if self.phase in (None, Phase.COMMITTED, Phase.ABANDONED):
      self._begin(now)
    elif self.phase == Phase.SELECTING and now >= self._started + self.config.selection_timeout:
      if len(self._selected) >= self.config.quorum:
        self._close_selection(now)
      else:
        self._abandon(now, f"selection timed out with {len(self._selected)} client(s); "
                           f"{self.config.quorum} needed")
    elif self.phase == Phase.REPORTING and now >= self._deadline:
      if len(self._reported) >= self.config.quorum:
        self._finish_commit(now)
      else:
        self._abandon(now, f"reporting deadline passed with {len(self._reported)} report(s); "
                           f"{self.config.quorum} needed")
    return self.phase

  # ----------------------------------------------------------------- clients

  def check_in(self, client: str, now: float) -> CheckIn:
    """A client asks for work.

    Example:
      >>> machine.check_in(key_id, now=clock()).status
      'selected'
    """
    if self.store.strikes(client) >= self.config.max_strikes:
      return CheckIn("refused")
    self.tick(now)
    if client in self._reported:   # its report is in: nothing more to do this round
      return CheckIn("wait", retry_after=1.0)
    if self.phase == Phase.SELECTING or (self.phase == Phase.REPORTING and
                                         client in self._selected):
      if client in self._selected:
        return CheckIn("selected", self.round)
      self._selected.add(client)
      if len(self._selected) >= self.config.selection_count:
        self._close_selection(now)
      return CheckIn("selected", self.round)
    # Come back when the round may be over, but at least every few seconds:
    # it can commit early, at its goal.
    retry = min(max(1.0, self._deadline - now), 5.0) if self.phase == Phase.REPORTING else 1.0
    return CheckIn("wait", retry_after=retry)

  def submit(self, client: str, round_number: int, update: Any, now: float) -> str:
    """A client's report for `round_number`. Returns "accepted", or why it
    was refused: "refused" (too many strikes), "late" (the round was
    committed, or its reports are complete), "wrong_round" (a round that has
    not begun), "not_selected" (also a report from an abandoned attempt of
    this round), "duplicate" or "rejected" (it failed validation: a strike).

    Example:
      >>> machine.submit(key_id, 3, update, now=clock())
      'accepted'
    """
    if self.store.strikes(client) >= self.config.max_strikes:
      return "refused"
    self.tick(now)
    if isinstance(round_number, bool) or not isinstance(round_number, int):
      return "wrong_round"
    if round_number < self.round:
      return "late"   # that round was committed (a straggler)
    if round_number > self.round:
      return "wrong_round"
    if self.phase not in (Phase.SELECTING, Phase.REPORTING):
      return "late"
    if client not in self._selected:
      return "not_selected"
    if client in self._reported:
      return "duplicate"
    try:
      update = self._validate(client, update)
    except UpdateRejected as e:
      self._rejected += 1
      strikes = self.store.add_strike(client)
      self.store.record_event(self.round, "rejected", {"client": client, "reason": e.reason,
                                                       "strikes": strikes})
      return "rejected"
    try:
      self._accumulator.add(update)   # all or nothing
    except (UpdateRejected, ValueError, TypeError) as e:
      # a value the aggregate refuses (out of a secure sum's bound, a wrong type)
      self._rejected += 1
      strikes = self.store.add_strike(client)
      self.store.record_event(self.round, "rejected", {
          "client": client, "reason": getattr(e, "reason", "aggregate"), "strikes": strikes})
      return "rejected"
    self._reported[client] = None
    if len(self._reported) >= self.config.goal_count:
      self._finish_commit(now)
    return "accepted"
