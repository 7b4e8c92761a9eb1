"""The server's persistent state, in SQLite: the committed rounds (each with
the process state after it), the registered clients and their strikes, and
a journal of round events.

Every change is one transaction in WAL mode with `synchronous=FULL`, so a
server killed at any point restarts from its last committed round and never
loses one: a round is committed exactly when its row and its state are
written together.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from typing import Any

__all__ = ["ServerStore", "CommittedRound"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
  number INTEGER PRIMARY KEY,
  committed_at REAL NOT NULL,
  state BLOB NOT NULL,
  summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
  key_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  strikes INTEGER NOT NULL DEFAULT 0,
  registered_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at REAL NOT NULL,
  round INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL);
"""
_VERSION = "1"


class CommittedRound:
  """A committed round: its `number`, the process `state` (bytes) after it,
  and its `summary` (a dict: reports, dropped clients, metrics)."""

  def __init__(self, number: int, state: bytes, summary: dict):
    self.number, self.state, self.summary = number, state, summary

  def __repr__(self) -> str:
    return f"CommittedRound(number={self.number}, {len(self.state)} state bytes)"


class ServerStore:
  """The server's SQLite database (see the module docstring).

  Args:
    path: the database file (made if missing).
    initial_state: the process state before round 1 (bytes), stored as
      round 0 when the database is new.

  Raises:
    ValueError: the file is not a fedjit server database, or holds
      another version.

  Example:
    >>> store = ServerStore("server.db", initial_state=state_bytes)
    >>> last = store.last_committed()        # round 0 on a new server
    >>> store.commit_round(last.number + 1, new_state_bytes, {"reports": 40})
  """

  def __init__(self, path: str | os.PathLike, initial_state: bytes | None = None):
    self.path = os.fspath(path)
    self._lock = threading.Lock()
    try:
      self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
      self._db.execute("PRAGMA journal_mode=WAL")
      self._db.execute("PRAGMA synchronous=FULL")
      self._db.executescript(_SCHEMA)
    except sqlite3.DatabaseError as e:
      raise ValueError(f"{self.path} is not a fedjit server database ({e}); move it away "
                       f"or pass another path.") from None
    with self._transaction() as db:
      row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
      if row is None:
        db.execute("INSERT INTO meta VALUES ('version', ?)", (_VERSION,))
      elif row[0] != _VERSION:
        raise ValueError(f"{self.path} is a version-{row[0]} fedjit server database; this "
                         f"fedjit reads version {_VERSION}.")
      has_rounds = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
      if not has_rounds:
        if initial_state is None:
          raise ValueError(f"{self.path} is a new server database: pass initial_state (the "
                           f"process state before round 1).")
        db.execute("INSERT INTO rounds VALUES (0, ?, ?, ?)",
                   (time.time(), _blob(initial_state), json.dumps({"initial": True})))

  def _transaction(self):
    store = self

    class _Tx:
      def __enter__(self):
        store._lock.acquire()
        store._db.execute("BEGIN IMMEDIATE")
        return store._db

      def __exit__(self, kind, value, tb):
        try:
          store._db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
          store._lock.release()
        return False
    return _Tx()

  def last_committed(self) -> CommittedRound:
    """The last committed round (round 0: the initial state).

    Example:
      >>> store.last_committed().number
      0
    """
    with self._transaction() as db:
      number, state, summary = db.execute(
          "SELECT number, state, summary FROM rounds ORDER BY number DESC LIMIT 1").fetchone()
    return CommittedRound(number, bytes(state), json.loads(summary))

  def commit_round(self, number: int, state: bytes, summary: dict) -> None:
    """Commits round `number` with the process `state` after it, in one
    transaction.

    Raises:
      ValueError: `number` is not the round after the last committed one
        (a round is committed once, in order).

    Example:
      >>> store.commit_round(1, state_bytes, {"reports": 40, "dropped": 3})
    """
    summary_text = json.dumps(summary, sort_keys=True)
    with self._transaction() as db:
      last = db.execute("SELECT MAX(number) FROM rounds").fetchone()[0]
      if number != last + 1:
        raise ValueError(f"Round {number} cannot be committed: the last committed round is "
                         f"{last}, so the next is {last + 1}.")
      db.execute("INSERT INTO rounds VALUES (?, ?, ?, ?)",
                 (number, time.time(), _blob(state), summary_text))
      db.execute("INSERT INTO events (at, round, kind, detail) VALUES (?, ?, 'commit', ?)",
                 (time.time(), number, summary_text))

  def record_event(self, round_number: int, kind: str, detail: dict) -> None:
    """Appends an event (a round abandoned, a client refused, ...) to the journal.

    Example:
      >>> store.record_event(3, "abandon", {"reports": 12, "needed": 32})
    """
    with self._transaction() as db:
      db.execute("INSERT INTO events (at, round, kind, detail) VALUES (?, ?, ?, ?)",
                 (time.time(), int(round_number), str(kind), json.dumps(detail, sort_keys=True)))

  def events(self, kind: str | None = None) -> list[tuple[int, str, dict]]:
    """The journal as (round, kind, detail) tuples, oldest first.

    Example:
      >>> [k for _, k, _ in store.events()]
      ['commit', 'abandon', 'commit']
    """
    with self._transaction() as db:
      rows = db.execute("SELECT round, kind, detail FROM events ORDER BY id").fetchall()
    return [(r, k, json.loads(d)) for r, k, d in rows if kind is None or k == kind]

  def register_client(self, key_id: str, name: str) -> None:
    """Records a client (idempotent).

    Example:
      >>> store.register_client(identity.key_id, "hospital-a")
    """
    with self._transaction() as db:
      db.execute("INSERT OR IGNORE INTO clients VALUES (?, ?, 0, ?)",
                 (str(key_id), str(name), time.time()))

  def add_strike(self, key_id: str) -> int:
    """Counts one rejected update against a client; returns its strikes.

    Example:
      >>> store.add_strike(client)       # after an UpdateRejected
      1
    """
    with self._transaction() as db:
      db.execute("INSERT OR IGNORE INTO clients VALUES (?, ?, 0, ?)",
                 (str(key_id), "", time.time()))
      db.execute("UPDATE clients SET strikes = strikes + 1 WHERE key_id = ?", (str(key_id),))
      return db.execute("SELECT strikes FROM clients WHERE key_id = ?",
                        (str(key_id),)).fetchone()[0]

  def strikes(self, key_id: str) -> int:
    """A client's strikes (0 for one never seen)."""
    with self._transaction() as db:
      row = db.execute("SELECT strikes FROM clients WHERE key_id = ?", (str(key_id),)).fetchone()
    return 0 if row is None else row[0]

  def close(self) -> None:
    """Closes the database."""
    with self._lock:
      self._db.close()


def _blob(state: Any) -> bytes:
  if isinstance(state, (bytearray, memoryview)):
    state = bytes(state)
  if not isinstance(state, bytes):
    raise TypeError(f"The process state is stored as bytes, got {type(state).__name__}.")
  return state
