"""The client runtime: checks in with a fedjit server, and when selected
fetches the round's program and task, runs the program on its own data and
submits the outputs.

It runs nothing but a fedjit computation whose bytes hash to a value its
owner approved (`ApprovalPolicy`): the program is checked before it is
deserialized, and deserializing it imports no code from the server (a JSON
graph and StableHLO). Every request is signed with the client's
`ClientIdentity`; the task's values are decoded against the program's types
before use. On refusals and network errors it retries with exponential
backoff and full jitter.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from typing import Any

from fedjit.deploy import _protocol as proto
from fedjit.deploy._review import ApprovalPolicy, TaskManifest, load_approved_program
from fedjit.deploy._signing import ClientIdentity, sign_request
from fedjit.deploy._wire import MAX_CHUNK_BYTES, UpdateRejected, ValueDecoder, encode_value

__all__ = ["Client"]

_MESSAGE_LIMIT = MAX_CHUNK_BYTES + (64 << 10)
_MAX_PROGRAM_BYTES = 512 << 20


class Client:
  """One device's runtime (see the module docstring).

  Args:
    address: the server, "host:port".
    identity: the client's `ClientIdentity` (or the path of its signing key).
    data: the client's data: the value the client program takes as its
      client data (e.g. a list of batches, or a `fedjit.simulation.Dataset`).
    policy: the owner's `ApprovalPolicy` (or its path).
    ca_certificate: the CA that signed the server's certificate (path).
    certificate, key: the client's TLS certificate and key, for mutual TLS.
    insecure: connect without TLS (tests and local experiments only).
    timeout: seconds per request.

  Example:
    >>> client = fedjit.deploy.Client(
    ...     "fl.example.org:8443", "certs/clients/hospital-a.sign.key", my_batches,
    ...     "policy.json", ca_certificate="certs/ca.pem",
    ...     certificate="certs/clients/hospital-a.pem", key="certs/clients/hospital-a.key")
    >>> client.run(max_rounds=10)
  """

  def __init__(self, address: str, identity: Any, data: Any, policy: Any, *,
               ca_certificate: str | None = None, certificate: str | None = None,
               key: str | None = None, insecure: bool = False, timeout: float = 60.0,
               server_name: str | None = None):
    import grpc
    self.identity = identity if isinstance(identity, ClientIdentity) else ClientIdentity.load(
        identity)
    self.policy = policy if isinstance(policy, ApprovalPolicy) else ApprovalPolicy.load(policy)
    self.data = data
    self.timeout = timeout
    self._programs: dict[str, Any] = {}
    options = [("grpc.max_receive_message_length", _MESSAGE_LIMIT),
               ("grpc.max_send_message_length", _MESSAGE_LIMIT)]
    if server_name:
      options.append(("grpc.ssl_target_name_override", server_name))
    if insecure:
      self._channel = grpc.insecure_channel(address, options=options)
    else:
      if ca_certificate is None:
        raise ValueError("The client needs the CA certificate that signed the server's "
                         "(`fedjit certs init` writes ca.pem); pass insecure=True only for "
                         "local experiments.")
      def read(path):
        if path is None:
          return None
        with open(path, "rb") as fh:
          return fh.read()
      credentials = grpc.ssl_channel_credentials(
          root_certificates=read(ca_certificate), private_key=read(key),
          certificate_chain=read(certificate))
      self._channel = grpc.secure_channel(address, credentials, options=options)
    ser = lambda m: m.SerializeToString()  # noqa: E731
    M = proto.messages
    self._register = self._channel.unary_unary(
        proto.METHODS["Register"], request_serializer=ser,
        response_deserializer=M.RegisterResponse.FromString)
    self._heartbeat = self._channel.unary_unary(
        proto.METHODS["Heartbeat"], request_serializer=ser,
        response_deserializer=M.HeartbeatResponse.FromString)
    self._check_in = self._channel.unary_unary(
        proto.METHODS["CheckIn"], request_serializer=ser,
        response_deserializer=M.CheckInResponse.FromString)
    self._get_program = self._channel.unary_stream(
        proto.METHODS["GetProgram"], request_serializer=ser,
        response_deserializer=M.Blob.FromString)
    self._get_manifest = self._channel.unary_unary(
        proto.METHODS["GetManifest"], request_serializer=ser,
        response_deserializer=M.Manifest.FromString)
    self._get_task = self._channel.unary_stream(
        proto.METHODS["GetTask"], request_serializer=ser,
        response_deserializer=M.TaskPart.FromString)
    self._submit = self._channel.stream_unary(
        proto.METHODS["SubmitResult"], request_serializer=lambda b: b,
        response_deserializer=M.SubmitResponse.FromString)

  def close(self) -> None:
    """Closes the connection."""
    self._channel.close()

  def _headers(self, method: str, body: bytes) -> list:
    return list(sign_request(self.identity, proto.METHODS[method], body).items())

  def register(self, name: str = "") -> Any:
    """Announces this client to the server (recorded in its store); returns
    the server's `RegisterResponse` (key id, strikes, program hash).

    Example:
      >>> client.register("hospital-a").strikes
      0
    """
    import fedjit
    request = proto.messages.RegisterRequest(name=name, client_version=fedjit.__version__)
    return self._register(request, timeout=self.timeout,
                          metadata=self._headers("Register", request.SerializeToString()))

  def heartbeat(self, round_number: int) -> bool:
    """Whether the server still wants this client's report for the round
    (checked before uploading it).

    Example:
      >>> client.heartbeat(3)
      True
    """
    request = proto.messages.HeartbeatRequest(round=round_number)
    reply = self._heartbeat(request, timeout=self.timeout,
                            metadata=self._headers("Heartbeat", request.SerializeToString()))
    return bool(reply.round_open)

  def manifest(self) -> TaskManifest:
    """The server's `TaskManifest` (what its client program sends), for the
    owner's review; nothing is downloaded or run.

    Example:
      >>> print(client.manifest().review())
    """
    import fedjit
    request = proto.messages.ManifestRequest(client_version=fedjit.__version__)
    reply = self._get_manifest(request, timeout=self.timeout,
                               metadata=self._headers("GetManifest",
                                                      request.SerializeToString()))
    return TaskManifest.from_json(reply.json)

  def _program(self, sha256: str) -> Any:
    if sha256 in self._programs:
      return self._programs[sha256]
    # Refuse before downloading anything the owner has not approved.
    if not self.policy.is_approved(sha256):
      return None
    request = proto.messages.ProgramRequest(sha256=sha256)
    chunks, total = [], 0
    for blob in self._get_program(request, timeout=self.timeout,
                                  metadata=self._headers("GetProgram",
                                                         request.SerializeToString())):
      total += len(blob.data)
      if total > _MAX_PROGRAM_BYTES or blob.offset != total - len(blob.data):
        raise UpdateRejected("size", "The server sent a malformed program stream.")
      chunks.append(blob.data)
    data = b"".join(chunks)
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
      raise UpdateRejected("type", "The program's bytes do not match its hash.")
    program = load_approved_program(self.policy, data)
    self._programs[sha256] = program
    return program

  def step(self) -> tuple[str, float]:
    """One check-in: `(outcome, seconds to wait before the next)`. Outcomes:
    the server's answer to a submitted report ("accepted", "late", ...),
    "wait", "refused", or "not_approved" (the round's program is not in the
    owner's policy; nothing was downloaded or run).

    Example:
      >>> client.step()
      ('accepted', 1.0)
    """
    import fedjit
    request = proto.messages.CheckInRequest(client_version=fedjit.__version__)
    answer = self._check_in(request, timeout=self.timeout,
                            metadata=self._headers("CheckIn", request.SerializeToString()))
    retry = max(answer.retry_after_ms / 1000.0, 0.05)
    if answer.status != "selected":
      return answer.status, retry
    program = self._program(answer.program_sha256)
    if program is None:
      return "not_approved", retry
    broadcasts = self._task(answer.round, answer.program_sha256, program)
    outputs = fedjit.core.DistributedRound.run_client(program, [self.data], broadcasts)
    if not self.heartbeat(answer.round):   # the round ended while we trained
      return "late", 0.05
    return self._send(answer.round, program, outputs), 0.05

  def _task(self, round_number: int, sha256: str, program: Any) -> list:
    params = list(program.type_signature.parameter.types())
    types = [t.member for t in params if getattr(t, "all_equal", False)]
    request = proto.messages.TaskRequest(round=round_number)
    stream = self._get_task(request, timeout=self.timeout,
                            metadata=self._headers("GetTask", request.SerializeToString()))
    parts = iter(stream)
    first = next(parts)
    if first.WhichOneof("part") != "header" or first.header.round != round_number or (
        first.header.num_values != len(types)) or not hmac.compare_digest(
            first.header.program_sha256, sha256):
      raise UpdateRejected("type", "The task does not match the round's program.")
    values, decoder, k = [], None, 0
    for part in parts:
      if part.WhichOneof("part") != "value":
        raise UpdateRejected("order", "A task holds values after its header.")
      if decoder is None:
        if k >= len(types):
          raise UpdateRejected("order", "The task has more values than the program takes.")
        decoder = ValueDecoder(types[k])
      decoder.add(part.value)
      if decoder.complete:
        values.append(decoder.result())
        decoder, k = None, k + 1
    if len(values) != len(types):
      raise UpdateRejected("incomplete", "The task ended before all its values.")
    return values

  def _send(self, round_number: int, program: Any, outputs: list) -> str:
    types = [t.member for t in program.type_signature.result.types()]
    parts = [proto.messages.SubmitPart(header=proto.messages.SubmitHeader(
        round=round_number, num_values=len(outputs))).SerializeToString()]
    for value, t in zip(outputs, types):
      parts += [proto.messages.SubmitPart(value=p).SerializeToString()
                for p in encode_value(value, t)]
    answer = self._submit(iter(parts), timeout=self.timeout,
                          metadata=self._headers("SubmitResult", proto.stream_body(parts)))
    return answer.outcome

  def run(self, *, max_rounds: int | None = None, max_seconds: float | None = None,
          backoff_initial: float = 0.5, backoff_max: float = 30.0) -> list[str]:
    """Checks in until `max_rounds` reports were accepted or `max_seconds`
    passed; returns the outcomes of its submissions. Network errors are
    retried with exponential backoff and full jitter.

    Example:
      >>> client.run(max_rounds=5, max_seconds=600)
      ['accepted', 'accepted', 'late', 'accepted', 'accepted', 'accepted']
    """
    import grpc
    jitter = random.SystemRandom()
    start, outcomes, failures = time.monotonic(), [], 0
    while True:
      if max_rounds is not None and outcomes.count("accepted") >= max_rounds:
        return outcomes
      if max_seconds is not None and time.monotonic() - start >= max_seconds:
        return outcomes
      try:
        outcome, wait = self.step()
        failures = 0
        if outcome in ("refused", "not_approved"):
          return outcomes + [outcome]
        if outcome not in ("wait",):
          outcomes.append(outcome)
      except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
          raise
        failures += 1
        wait = jitter.uniform(0, min(backoff_max, backoff_initial * 2 ** failures))
      remaining = None if max_seconds is None else max_seconds - (time.monotonic() - start)
      time.sleep(max(0.0, wait if remaining is None else min(wait, remaining)))
