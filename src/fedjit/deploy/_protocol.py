"""The gRPC protocol between a fedjit server and its clients (package
`fedjit.deploy.v1`, service `Federated`).

    Register(RegisterRequest) -> RegisterResponse            first contact: the server records the key
    CheckIn(CheckInRequest) -> CheckInResponse               unary
    Heartbeat(HeartbeatRequest) -> HeartbeatResponse         is my round still open?
    GetProgram(ProgramRequest) -> stream Blob                the client program, by hash
    GetManifest(ManifestRequest) -> Manifest                 what the program sends (review)
    GetTask(TaskRequest) -> stream TaskPart                  header, then the broadcast values
    SubmitResult(stream SubmitPart) -> SubmitResponse        header, then the client's outputs

Values travel as `ValuePart` streams (see `_wire.py`). Every request is
signed (see `_signing.py`): the signature's body is the serialized request,
or for the client stream the concatenation of its parts, each prefixed with
its length, so that no part can be added, dropped, reordered or changed.
"""

from __future__ import annotations

import struct
from typing import Iterable

from fedjit.deploy import _wire

__all__ = ["SERVICE", "METHODS", "messages", "stream_body"]

SERVICE = "fedjit.deploy.v1.Federated"
METHODS = {name: f"/{SERVICE}/{name}" for name in
           ("Register", "CheckIn", "Heartbeat", "GetProgram", "GetManifest", "GetTask",
            "SubmitResult")}

_wire.ValuePart  # the wire file is built first: this one depends on it
_M = _wire.build_messages("fedjit/deploy/v1/federated.proto", {
    "RegisterRequest": [("name", "TYPE_STRING", 1, False, None),
                        ("client_version", "TYPE_STRING", 2, False, None)],
    "RegisterResponse": [("key_id", "TYPE_STRING", 1, False, None),
                         ("strikes", "TYPE_INT32", 2, False, None),
                         ("program_sha256", "TYPE_STRING", 3, False, None)],
    "HeartbeatRequest": [("round", "TYPE_INT64", 1, False, None)],
    "HeartbeatResponse": [("round_open", "TYPE_BOOL", 1, False, None),
                          ("deadline_ms", "TYPE_INT64", 2, False, None)],
    "CheckInRequest": [("client_version", "TYPE_STRING", 1, False, None)],
    "CheckInResponse": [("status", "TYPE_STRING", 1, False, None),
                        ("round", "TYPE_INT64", 2, False, None),
                        ("retry_after_ms", "TYPE_INT64", 3, False, None),
                        ("program_sha256", "TYPE_STRING", 4, False, None)],
    "ProgramRequest": [("sha256", "TYPE_STRING", 1, False, None)],
    "Blob": [("offset", "TYPE_INT64", 1, False, None),
             ("total_bytes", "TYPE_INT64", 2, False, None),
             ("data", "TYPE_BYTES", 3, False, None)],
    "TaskRequest": [("round", "TYPE_INT64", 1, False, None)],
    "ManifestRequest": [("client_version", "TYPE_STRING", 1, False, None)],
    "Manifest": [("json", "TYPE_STRING", 1, False, None)],
    "TaskHeader": [("round", "TYPE_INT64", 1, False, None),
                   ("program_sha256", "TYPE_STRING", 2, False, None),
                   ("num_values", "TYPE_INT32", 3, False, None)],
    "TaskPart": [("header", "TYPE_MESSAGE", 1, False, "TaskHeader"),
                 ("value", "TYPE_MESSAGE", 2, False, "ValuePart")],
    "SubmitHeader": [("round", "TYPE_INT64", 1, False, None),
                     ("num_values", "TYPE_INT32", 2, False, None)],
    "SubmitPart": [("header", "TYPE_MESSAGE", 1, False, "SubmitHeader"),
                   ("value", "TYPE_MESSAGE", 2, False, "ValuePart")],
    "SubmitResponse": [("outcome", "TYPE_STRING", 1, False, None)],
}, oneofs={"TaskPart": "part", "SubmitPart": "part"},
    dependencies=("fedjit/deploy/v1/wire.proto",))


class messages:
  """The protocol's message classes."""
  RegisterRequest = _M["RegisterRequest"]
  RegisterResponse = _M["RegisterResponse"]
  HeartbeatRequest = _M["HeartbeatRequest"]
  HeartbeatResponse = _M["HeartbeatResponse"]
  CheckInRequest = _M["CheckInRequest"]
  CheckInResponse = _M["CheckInResponse"]
  ProgramRequest = _M["ProgramRequest"]
  Blob = _M["Blob"]
  TaskRequest = _M["TaskRequest"]
  ManifestRequest = _M["ManifestRequest"]
  Manifest = _M["Manifest"]
  TaskHeader = _M["TaskHeader"]
  TaskPart = _M["TaskPart"]
  SubmitHeader = _M["SubmitHeader"]
  SubmitPart = _M["SubmitPart"]
  SubmitResponse = _M["SubmitResponse"]


def stream_body(serialized_parts: Iterable[bytes]) -> bytes:
  """The signed body of a client stream: each part's length (8 bytes, little
  endian) and bytes, in order.

  Example:
    >>> stream_body([b"ab", b"c"])
    b'\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00ab\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00c'
  """
  return b"".join(struct.pack("<Q", len(p)) + p for p in serialized_parts)
