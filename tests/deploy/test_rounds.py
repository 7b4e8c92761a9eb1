"""The server's round state machine and its SQLite store, on a virtual clock."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fedjit.deploy._rounds import Phase, RoundConfig, RoundStateMachine
from fedjit.deploy._store import ServerStore
from fedjit.deploy._wire import UpdateRejected


class MeanAccumulator:
  def __init__(self, round_number):
    self.total, self.count = 0.0, 0

  def add(self, update):
    self.total += float(update)
    self.count += 1


def _commit(round_number, acc, previous):
  # The "process state" is the list of round means so far.
  means = [float(x) for x in previous.decode().split(",") if x]
  means.append(acc.total / acc.count)
  return ",".join(map(repr, means)).encode(), {"mean": acc.total / acc.count}


def _validate(client, update):
  if not np.isfinite(update):
    raise UpdateRejected("non_finite", "not finite")
  return update


def _machine(tmp_path, **config):
  store = ServerStore(tmp_path / "server.db", initial_state=b"")
  return RoundStateMachine(RoundConfig(**config), store, MeanAccumulator, _commit, _validate)


def test_over_selection_commits_at_the_goal_and_drops_stragglers(tmp_path):
  m = _machine(tmp_path, goal_count=10, over_selection=1.3)
  assert m.config.selection_count == 13
  answers = [m.check_in(f"c{i}", now=i * 0.1) for i in range(15)]
  assert [a.status for a in answers] == ["selected"] * 13 + ["wait"] * 2
  assert m.phase == Phase.REPORTING     # selection closed as soon as 13 were in
  for i in range(10):
    assert m.submit(f"c{i}", 1, float(i), now=5.0) == "accepted"
  assert m.phase == Phase.COMMITTED and m.round == 2
  assert m.submit("c11", 1, 100.0, now=6.0) == "late"   # never reaches the aggregate
  last = m.store.last_committed()
  assert last.number == 1 and last.summary["metrics"]["mean"] == pytest.approx(4.5)
  assert (last.summary["selected"], last.summary["reports"], last.summary["dropped"]) == (
      13, 10, 3)


def test_the_reporting_deadline_commits_with_a_quorum_or_abandons(tmp_path):
  m = _machine(tmp_path, goal_count=10, min_reports=8, reporting_deadline=100.0)
  for i in range(13):
    m.check_in(f"c{i}", now=0.0)
  for i in range(8):
    m.submit(f"c{i}", 1, 1.0, now=50.0)
  assert m.tick(now=99.0) == Phase.REPORTING
  assert m.tick(now=100.0) == Phase.COMMITTED
  assert m.store.last_committed().summary["reports"] == 8
  # Round 2: only 7 report before the deadline -> abandoned, and round 2 again.
  for i in range(13):
    m.check_in(f"c{i}", now=200.0)
  for i in range(7):
    m.submit(f"c{i}", 2, 1.0, now=210.0)
  assert m.tick(now=300.0) == Phase.ABANDONED
  assert m.round == 2 and m.store.last_committed().number == 1
  (_, kind, detail), = m.store.events("abandon")
  assert "7 report(s); 8 needed" in detail["why"]
  assert m.check_in("c0", now=301.0).round == 2      # a fresh attempt of round 2
  assert m.submit("c5", 2, 1.0, now=302.0) == "not_selected"   # from the abandoned attempt


def test_selection_timeout(tmp_path):
  m = _machine(tmp_path, goal_count=10, min_reports=6, selection_timeout=30.0)
  for i in range(5):
    m.check_in(f"c{i}", now=1.0)
  assert m.tick(now=30.9) == Phase.SELECTING      # the round began at the first check-in
  assert m.tick(now=31.0) == Phase.ABANDONED
  for i in range(6):
    m.check_in(f"c{i}", now=32.0)
  assert m.tick(now=61.9) == Phase.SELECTING
  assert m.tick(now=62.0) == Phase.REPORTING        # 6 >= quorum: go on with them


def test_refusals_leave_the_aggregate_alone(tmp_path):
  m = _machine(tmp_path, goal_count=3, over_selection=1.0)
  for c in ("a", "b", "c"):
    m.check_in(c, now=0.0)
  assert m.check_in("a", now=0.1).status == "selected"        # idempotent
  assert m.submit("z", 1, 1.0, now=1.0) == "not_selected"
  assert m.submit("a", 1, 1.0, now=1.0) == "accepted"
  assert m.submit("a", 1, 50.0, now=1.0) == "duplicate"
  assert m.submit("b", 7, 50.0, now=1.0) == "wrong_round"
  assert m.submit("b", True, 50.0, now=1.0) == "wrong_round"
  assert m.submit("b", 1, float("nan"), now=1.0) == "rejected"
  assert m.submit("b", 1, 2.0, now=1.0) == "accepted"
  assert m.submit("c", 1, 3.0, now=1.0) == "accepted"
  assert m.store.last_committed().summary["metrics"]["mean"] == pytest.approx(2.0)
  assert m.store.last_committed().summary["rejected"] == 1


def test_strikes_refuse_a_client_and_survive_a_restart(tmp_path):
  m = _machine(tmp_path, goal_count=5, max_strikes=2)
  m.check_in("bad", now=0.0)
  assert m.submit("bad", 1, float("inf"), now=1.0) == "rejected"
  assert m.submit("bad", 1, float("nan"), now=1.0) == "rejected"
  assert m.submit("bad", 1, 1.0, now=1.0) == "refused"
  m.store.close()
  again = _machine(tmp_path, goal_count=5, max_strikes=2)
  assert again.check_in("bad", now=2.0).status == "refused"
  assert [d["reason"] for _, _, d in again.store.events("rejected")] == ["non_finite"] * 2


def test_a_restart_resumes_after_the_last_committed_round(tmp_path):
  m = _machine(tmp_path, goal_count=2, over_selection=1.0)
  for r in (1, 2, 3):
    m.check_in("a", now=r * 10.0)
    m.check_in("b", now=r * 10.0)
    m.submit("a", r, r, now=r * 10.0 + 1)
    m.submit("b", r, r + 1, now=r * 10.0 + 1)
  m.check_in("a", now=40.0)
  m.submit("a", 4, 1.0, now=41.0)      # round 4 in progress when the server "crashes"
  m.store.close()
  resumed = _machine(tmp_path, goal_count=2, over_selection=1.0)
  assert resumed.round == 4
  assert resumed.store.last_committed().state == b"1.5,2.5,3.5"
  assert resumed.submit("a", 4, 1.0, now=50.0) == "not_selected"   # its attempt is gone


_WRITER = r"""
import sys
from fedjit.deploy._store import ServerStore
store = ServerStore(sys.argv[1], initial_state=b"0")
n = store.last_committed().number
print("ready", flush=True)
while True:
  n += 1
  store.commit_round(n, str(n).encode() * 1000, {"n": n})
"""


def test_a_server_killed_mid_write_loses_no_committed_round(tmp_path):
  path = str(tmp_path / "server.db")
  for _ in range(2):
    child = subprocess.Popen([sys.executable, "-c", _WRITER, path], stdout=subprocess.PIPE,
                             text=True)
    try:
      assert child.stdout.readline().strip() == "ready"
      time.sleep(0.3)
    finally:
      child.send_signal(signal.SIGKILL)
      child.wait(10)
    store = ServerStore(path)
    last = store.last_committed()
    assert last.number > 0
    assert last.state == str(last.number).encode() * 1000   # whole, never half written
    numbers = [r for r, kind, _ in store.events("commit")]
    assert numbers == list(range(1, last.number + 1))
    store.close()


def test_store_errors(tmp_path):
  with pytest.raises(ValueError, match="pass initial_state"):
    ServerStore(tmp_path / "new.db")
  junk = tmp_path / "junk.db"
  junk.write_bytes(b"this is not sqlite" * 100)
  with pytest.raises(ValueError, match="not a fedjit server database"):
    ServerStore(junk)
  store = ServerStore(tmp_path / "s.db", initial_state=b"x")
  with pytest.raises(ValueError, match="the last committed round is 0, so the next is 1"):
    store.commit_round(2, b"y", {})
  with pytest.raises(TypeError, match="stored as bytes"):
    store.commit_round(1, "text", {})
  assert store.last_committed().number == 0


def test_config_errors():
  for kwargs, match in [({"goal_count": 0}, "goal_count"),
                        ({"goal_count": 5, "min_reports": 6}, "min_reports <= goal_count"),
                        ({"goal_count": 5, "over_selection": 0.5}, "over_selection >= 1"),
                        ({"goal_count": 5, "reporting_deadline": float("inf")}, "positive"),
                        ({"goal_count": 5, "max_strikes": True}, "max_strikes")]:
    with pytest.raises(ValueError, match=match):
      RoundConfig(**kwargs)


def test_dropouts_and_stragglers_on_a_virtual_clock(tmp_path):
  """200 clients, 20% drop out after being selected, latencies up to 150 s
  against a 100 s deadline: each round commits with the goal or the quorum,
  or is abandoned below the quorum, never blocked by stragglers; the counts
  add up."""
  rng = random.Random(0)
  m = _machine(tmp_path, goal_count=20, min_reports=15, over_selection=1.5,
               reporting_deadline=100.0, selection_timeout=10.0)
  now, outcomes = 0.0, []
  for _ in range(5):
    pending = []
    for c in rng.sample(range(200), 60):
      if m.check_in(f"c{c}", now).status == "selected":
        if rng.random() > 0.2:
          pending.append((now + rng.uniform(5, 150), f"c{c}"))
      now += 0.01
    round_number = m.round
    for at, client in sorted(pending):
      m.tick(at)
      deadline = m._deadline if m.phase == Phase.REPORTING else float("inf")
      outcome = m.submit(client, round_number, 1.0, at)
      outcomes.append(outcome)
      # stragglers never count: nothing is accepted at or past the deadline
      assert outcome != "accepted" or at < deadline
      now = at
    now = max(now, m._deadline) + 1
    m.tick(now)
  commits = m.store.events("commit")
  # (a straggler's report after a commit starts the next round early; with
  # nobody checking in within the selection timeout, that attempt is
  # abandoned empty, as a real server's would be)
  abandons = [e for e in m.store.events("abandon") if e[2]["selected"]]
  assert len(commits) + len(abandons) == 5 and len(commits) >= 2
  # stragglers: "late" after a commit, "not_selected" after an abandoned attempt
  assert set(outcomes) <= {"accepted", "late", "not_selected"} and outcomes.count("accepted") == sum(
      s["reports"] for _, _, s in commits + abandons)
  assert m.store.last_committed().number == len(commits)
  for _, _, s in commits:
    assert s["selected"] == 30 and 15 <= s["reports"] <= 20
    assert s["dropped"] == s["selected"] - s["reports"]
  for _, _, s in abandons:
    assert s["reports"] < 15
