"""The data owner's review: what a client program is, what it sends, and the
local policy of the programs its owner approved.

A server describes its client program in a `TaskManifest`: the program's
SHA-256, its type signature, and for each value the program sends, how the
server sees it (only an aggregate, through a secure sum, or individual
values) and which differential-privacy noise protects it, read from the
computation's graph by `fedjit.privacy_report`. `fedjit client review`
prints it; `fedjit client approve HASH` records the owner's decision in a
local policy file; the client runtime runs only programs whose bytes hash
to an approved value (`load_approved_program`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import re
import struct
import time
from typing import Any

from fedjit.deploy._files import write_atomic

__all__ = ["TaskManifest", "ApprovalPolicy", "NotApprovedError", "write_task_bundle",
           "read_task_bundle", "load_approved_program"]

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_BUNDLE_MAGIC = b"FEDJIT-TASK\x00\x01"


class NotApprovedError(PermissionError):
  """A program its owner has not approved (or whose bytes do not match)."""


@dataclasses.dataclass(frozen=True)
class TaskManifest:
  """What a client program is and sends (see the module docstring).

  Example:
    >>> manifest = TaskManifest.from_round(fedjit.core.DistributedRound(trainer))
    >>> print(manifest.review())
  """
  program_sha256: str
  computation: str
  signature: str
  outputs: tuple

  @classmethod
  def from_round(cls, plan: Any) -> "TaskManifest":
    """The manifest of a `fedjit.core.DistributedRound`'s client program."""
    import fedjit
    report = fedjit.privacy_report(plan.computation)
    by_node = {f.node: f for f in report.flows}
    graph = plan.split.graph
    outputs = []
    for k, j in enumerate(plan.split.client_outputs):
      seen = []
      for a in plan.split.aggregations:
        if j in [plan.split.alias[x] for x in graph.nodes[a].args]:
          flow = by_node.get(a)
          seen.append({
              "intrinsic": graph.nodes[a].attrs.get("name"),
              "server_sees": flow.reveals if flow else "aggregate",
              "secure": bool(flow.secure) if flow else False,
              "dp_noise": [f"{s.noise.describe()}, added {s.where}"
                           for s in (flow.noise if flow else ())]})
      outputs.append({"index": k, "type": str(graph.nodes[j].type.member), "sent_to": seen})
    return cls(plan.client_program_hash(), plan.computation.name,
               str(plan.client_program.type_signature), tuple(outputs))

  def to_json(self) -> str:
    """The manifest as JSON."""
    return json.dumps(dataclasses.asdict(self), sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "TaskManifest":
    """A manifest from `to_json`'s text, every field checked.

    Raises:
      ValueError: the text is not a manifest.
    """
    try:
      doc = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"Not a task manifest (JSON): {e}.") from None
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(doc, dict) or set(doc) != fields:
      raise ValueError(f"A task manifest has exactly the fields {sorted(fields)}.")
    if not isinstance(doc["program_sha256"], str) or not _HASH_RE.fullmatch(
        doc["program_sha256"]):
      raise ValueError("A task manifest's program_sha256 is 64 lower-case hex digits.")
    if not all(isinstance(doc[k], str) for k in ("computation", "signature")) or not isinstance(
        doc["outputs"], list):
      raise ValueError("A task manifest's computation and signature are text and its "
                       "outputs a list.")
    return cls(doc["program_sha256"], doc["computation"], doc["signature"],
               tuple(doc["outputs"]))

  def review(self) -> str:
    """The text a data owner reads before approving the program.

    Example:
      >>> print(manifest.review())
      Program 3f2a...  (LearningProcess.next's client work)
      ...
    """
    lines = [f"Program {self.program_sha256}",
             f"  the client work of: {self.computation}",
             f"  type: {self.signature}",
             f"  It sends {len(self.outputs)} value(s) to the server:"]
    for out in self.outputs:
      lines.append(f"  [{out['index']}] {out['type']}")
      for use in out["sent_to"]:
        secure = ", through a secure sum" if use["secure"] else ""
        lines.append(f"      {use['intrinsic']}: the server sees {use['server_sees']}{secure}")
        for noise in use["dp_noise"]:
          lines.append(f"      DP: {noise}")
        if not use["dp_noise"]:
          lines.append("      no differential-privacy noise")
    lines.append(f"Approve it with: fedjit client approve {self.program_sha256}")
    return "\n".join(lines)


def write_task_bundle(path: str | os.PathLike, plan: Any) -> TaskManifest:
  """Writes a `DistributedRound`'s client program and its manifest to one
  file (what a server hands out for review), atomically.

  Example:
    >>> write_task_bundle("task.fedjit", fedjit.core.DistributedRound(trainer))
  """
  manifest = TaskManifest.from_round(plan)
  header = manifest.to_json().encode()
  write_atomic(path, _BUNDLE_MAGIC + struct.pack("<Q", len(header)) + header +
               plan.serialized_client_program())
  return manifest


def read_task_bundle(path: str | os.PathLike) -> tuple[TaskManifest, bytes]:
  """(manifest, program bytes) from a task bundle; the bytes are checked
  against the manifest's hash.

  Raises:
    ValueError: not a task bundle, or the program does not match its hash.

  Example:
    >>> manifest, program = read_task_bundle("task.fedjit")
  """
  with open(path, "rb") as fh:
    data = fh.read()
  where = os.fspath(path)
  n = len(_BUNDLE_MAGIC)
  if len(data) < n + 8 or data[:n] != _BUNDLE_MAGIC:
    raise ValueError(f"{where} is not a fedjit task bundle.")
  (size,) = struct.unpack("<Q", data[n:n + 8])
  if size > len(data) - n - 8:
    raise ValueError(f"{where} is truncated (its manifest says {size} bytes).")
  manifest = TaskManifest.from_json(data[n + 8:n + 8 + size].decode("utf-8", "replace"))
  program = data[n + 8 + size:]
  if not hmac.compare_digest(hashlib.sha256(program).hexdigest(), manifest.program_sha256):
    raise ValueError(f"{where}: the program's bytes do not match the manifest's hash; the "
                     f"file was altered.")
  return manifest, program


class ApprovalPolicy:
  """The programs a data owner approved, in a local JSON file
  (`{"version": 1, "approved": {sha256: {"note": ..., "approved_at": ...}}}`).

  Example:
    >>> policy = ApprovalPolicy.load("policy.json")
    >>> policy.approve(manifest.program_sha256, note="FedAvg, digits")
    >>> policy.save("policy.json")
  """

  def __init__(self, approved: dict | None = None):
    self._approved = dict(approved or {})

  @staticmethod
  def _check(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HASH_RE.fullmatch(sha256):
      raise ValueError(f"A program hash is 64 lower-case hex digits (as `fedjit client "
                       f"review` prints), got {str(sha256)[:80]!r}.")
    return sha256

  def approve(self, sha256: str, note: str = "") -> None:
    """Approves the program with this hash."""
    self._approved[self._check(sha256)] = {"note": str(note)[:200],
                                           "approved_at": time.time()}

  def revoke(self, sha256: str) -> None:
    """Withdraws an approval.

    Raises:
      KeyError: the hash was not approved.
    """
    if self._approved.pop(self._check(sha256), None) is None:
      raise KeyError(f"{sha256[:16]}... is not approved.")

  def is_approved(self, sha256: str) -> bool:
    """Whether this hash is approved."""
    try:
      sha256 = self._check(sha256)
    except ValueError:
      return False
    return any(hmac.compare_digest(sha256, h) for h in self._approved)

  def hashes(self) -> list[str]:
    """The approved hashes."""
    return sorted(self._approved)

  def save(self, path: str | os.PathLike) -> None:
    """Writes the policy atomically."""
    write_atomic(path, (json.dumps({"version": 1, "approved": self._approved}, indent=1,
                                   sort_keys=True) + "\n").encode())

  @classmethod
  def load(cls, path: str | os.PathLike) -> "ApprovalPolicy":
    """The policy at `path` (a missing file approves nothing).

    Raises:
      ValueError: the file is not a policy.
    """
    if not os.path.exists(path):
      return cls()
    try:
      with open(path, "rb") as fh:
        doc = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise ValueError(f"{os.fspath(path)} is not a fedjit approval policy: {e}.") from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(
        doc.get("approved"), dict):
      raise ValueError(f"{os.fspath(path)} is not a version-1 fedjit approval policy.")
    policy = cls()
    for h, entry in doc["approved"].items():
      policy._check(h)
      if not isinstance(entry, dict):
        raise ValueError(f"{os.fspath(path)}: the entry for {h[:16]}... is not an object.")
      policy._approved[h] = entry
    return policy


def load_approved_program(policy: ApprovalPolicy, program: bytes) -> Any:
  """The client program in `program` (serialized bytes), if its owner
  approved its hash; nothing is deserialized otherwise.

  Raises:
    NotApprovedError: the hash is not in `policy`.

  Example:
    >>> program = load_approved_program(ApprovalPolicy.load("policy.json"), blob)
  """
  import fedjit
  if not isinstance(program, (bytes, bytearray)):
    raise TypeError(f"A program is bytes, got {type(program).__name__}.")
  digest = hashlib.sha256(program).hexdigest()
  if not policy.is_approved(digest):
    raise NotApprovedError(f"The program {digest} is not approved on this client; review it "
                           f"with `fedjit client review` and approve it with `fedjit client "
                           f"approve {digest}`.")
  return fedjit.deserialize(bytes(program))
