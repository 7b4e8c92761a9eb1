"""The deployment server: a learning process's rounds served over gRPC.

`Server(process, ...)` splits the process's round (`fedjit.core.
DistributedRound`), serves its client program by hash, and runs rounds with
the `RoundStateMachine` and `ServerStore`: clients check in, selected ones
fetch the round's task (the broadcast values), run the client program on
their own data and submit their outputs. Every request is signed by an
allow-listed key and checked (`RequestVerifier`) before anything else;
every submitted value is decoded against its type (`ValueDecoder`) before
it is kept, and a client whose values fail is struck. A committed round's
process state is written to the store, so a restarted server resumes.

Reports are added to the round's running aggregate as they arrive
(`RunningAggregate`: sums, not reports, so memory does not grow with the
cohort; `federated_collect` keeps every value, as its type says), with the
same arithmetic as the simulation.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent import futures
from typing import Any

from fedjit.deploy import _protocol as proto
from fedjit.deploy._review import TaskManifest
from fedjit.deploy._rounds import RoundConfig, RoundStateMachine
from fedjit.deploy._signing import AllowList, RequestVerifier, SignatureError
from fedjit.deploy._simulated import _metrics
from fedjit.deploy._store import ServerStore
from fedjit.deploy._wire import MAX_CHUNK_BYTES, UpdateRejected, ValueDecoder, encode_value

__all__ = ["Server"]

_MESSAGE_LIMIT = MAX_CHUNK_BYTES + (64 << 10)


def _grpc():
  try:
    import grpc
  except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("fedjit.deploy's server needs grpcio: pip install 'fedjit[deploy]'") from e
  return grpc


class _Round:
  """A round's task (what `DistributedRound.prepare` computed) and the
  running aggregate of its reports (sums, not reports: memory flat in the
  cohort)."""

  def __init__(self, plan: Any, task: Any):
    self.task = task
    self.running = plan.aggregate(task)

  def add(self, outputs: list) -> None:
    self.running.add(outputs)


def _nbytes(t: Any) -> int:
  import numpy as np
  from fedjit.deploy._wire import _leaves
  return sum(int(np.prod(l.shape, dtype=np.int64)) * np.dtype(l.dtype).itemsize
             for _, l in _leaves(t))


class Server:
  """Serves a learning process's rounds to real clients (see the module
  docstring).

  Args:
    process: a learning process (its `next` must split into one client
      stage; see `fedjit.core.DistributedRound`).
    allow_list: an `AllowList` (or its path) of the clients' signing keys.
    store_path: the server database; an existing one is resumed.
    config: the `RoundConfig`.
    certificate, key: the server's TLS certificate and key (PEM paths);
      required unless `insecure`.
    client_ca: a CA certificate (path): clients must then present a
      certificate it signed (mutual TLS).
    address: where to listen (port 0 picks a free port).
    insecure: serve without TLS (tests and local experiments only; requests
      are still signed).
    window_seconds: how far a request's timestamp may be from the clock.
    tick_seconds: how often deadlines are checked.

  Example:
    >>> server = fedjit.deploy.Server(
    ...     trainer, allow_list="allowed_clients.json", store_path="server.db",
    ...     config=fedjit.deploy.RoundConfig(goal_count=100, min_reports=80),
    ...     certificate="certs/server.pem", key="certs/server.key",
    ...     client_ca="certs/ca.pem", address="0.0.0.0:8443")
    >>> port = server.start()
  """

  def __init__(self, process: Any, *, allow_list: Any, store_path: str | os.PathLike,
               config: RoundConfig, certificate: str | None = None, key: str | None = None,
               client_ca: str | None = None, address: str = "127.0.0.1:0",
               insecure: bool = False, window_seconds: float = 120.0,
               tick_seconds: float = 0.2, max_workers: int = 8, clock=time.time):
    import fedjit
    from fedjit.learning import load_checkpoint, save_checkpoint
    if not insecure and (certificate is None or key is None):
      raise ValueError("The server needs its TLS certificate and key (`fedjit certs init` "
                       "makes them); pass insecure=True only for local experiments.")
    if not isinstance(allow_list, AllowList):
      allow_list = AllowList.load(allow_list)
    self.process = process
    self.plan = fedjit.core.DistributedRound(process)
    self.program = self.plan.serialized_client_program()
    self.program_sha256 = self.plan.client_program_hash()
    self.manifest = TaskManifest.from_round(self.plan)
    signature = self.plan.client_program.type_signature
    params = list(signature.parameter.types())
    self._broadcast_types = [t.member for t in params[len(self.plan.split.client_params):]]
    self._output_types = [t.member for t in signature.result.types()]
    self._max_submit_bytes = sum(_nbytes(t) for t in self._output_types) + (1 << 20)
    self._verifier = RequestVerifier(allow_list, window_seconds=window_seconds, clock=clock)
    self._clock, self._tick_seconds = clock, tick_seconds
    self._lock = threading.RLock()
    self._tmp = tempfile.TemporaryDirectory(prefix="fedjit-server-")
    self._state_file = os.path.join(self._tmp.name, "state.safetensors")
    self._template = process.initialize()
    self._save, self._load = save_checkpoint, load_checkpoint
    self.store = ServerStore(store_path, initial_state=self._state_bytes(self._template))
    self._state = self._state_from(self.store.last_committed().state)
    self.machine = RoundStateMachine(config, self.store, self._new_round, self._commit,
                                     self._validate)
    self._address, self._insecure = address, insecure
    self._tls = (certificate, key, client_ca)
    self._max_workers = max_workers
    self._grpc_server = None
    self._stop = threading.Event()
    self._ticker = None
    self.metrics: dict = {}

  # ------------------------------------------------------------- process state

  def _state_bytes(self, state) -> bytes:
    self._save(self._state_file, state)
    with open(self._state_file, "rb") as fh:
      return fh.read()

  def _state_from(self, data: bytes):
    with open(self._state_file, "wb") as fh:
      fh.write(data)
    return self._load(self._state_file, self._template)

  @property
  def state(self) -> Any:
    """The process state after the last committed round."""
    return self._state

  def _new_round(self, round_number: int) -> _Round:
    return _Round(self.plan, self.plan.prepare([self._state]))

  def _commit(self, round_number: int, current: _Round, previous: bytes):
    result = self.plan.finish(current.task, current.running)
    self._state = result.state
    self.metrics = _metrics(getattr(result, "metrics", {}))
    return self._state_bytes(result.state), self.metrics

  def _validate(self, client: str, parts: list) -> list:
    outputs, i = [], 0
    for t in self._output_types:
      decoder = ValueDecoder(t)
      first = True
      while True:
        if i >= len(parts):
          raise UpdateRejected("incomplete", "The report ended before all its values.")
        part = parts[i]
        if part.WhichOneof("part") == "header" and not first:
          break
        decoder.add(part)
        first = False
        i += 1
        if decoder.complete:
          break
      outputs.append(decoder.result())
    if i != len(parts):
      raise UpdateRejected("order", f"The report has {len(parts) - i} part(s) too many.")
    return outputs

  # ------------------------------------------------------------------- serving

  def start(self) -> int:
    """Starts serving; returns the port.

    Example:
      >>> port = server.start()
    """
    grpc = _grpc()
    options = [("grpc.max_receive_message_length", _MESSAGE_LIMIT),
               ("grpc.max_send_message_length", _MESSAGE_LIMIT)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers),
                         options=options)
    handlers = {
        "Register": grpc.unary_unary_rpc_method_handler(
            self._register, request_deserializer=proto.messages.RegisterRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "Heartbeat": grpc.unary_unary_rpc_method_handler(
            self._heartbeat, request_deserializer=proto.messages.HeartbeatRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "CheckIn": grpc.unary_unary_rpc_method_handler(
            self._check_in, request_deserializer=proto.messages.CheckInRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "GetProgram": grpc.unary_stream_rpc_method_handler(
            self._get_program, request_deserializer=proto.messages.ProgramRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "GetManifest": grpc.unary_unary_rpc_method_handler(
            self._get_manifest, request_deserializer=proto.messages.ManifestRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "GetTask": grpc.unary_stream_rpc_method_handler(
            self._get_task, request_deserializer=proto.messages.TaskRequest.FromString,
            response_serializer=lambda m: m.SerializeToString()),
        "SubmitResult": grpc.stream_unary_rpc_method_handler(
            self._submit, request_deserializer=lambda b: b,
            response_serializer=lambda m: m.SerializeToString()),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(proto.SERVICE,
                                                                         handlers),))
    if self._insecure:
      port = server.add_insecure_port(self._address)
    else:
      certificate, key, client_ca = self._tls
      with open(key, "rb") as fh:
        key_pem = fh.read()
      with open(certificate, "rb") as fh:
        cert_pem = fh.read()
      ca_pem = None
      if client_ca is not None:
        with open(client_ca, "rb") as fh:
          ca_pem = fh.read()
      credentials = grpc.ssl_server_credentials(
          [(key_pem, cert_pem)], root_certificates=ca_pem,
          require_client_auth=ca_pem is not None)
      port = server.add_secure_port(self._address, credentials)
    if not port:
      raise OSError(f"Could not listen on {self._address}.")
    server.start()
    self._grpc_server = server
    self._stop.clear()
    self._ticker = threading.Thread(target=self._tick_loop, daemon=True)
    self._ticker.start()
    return port

  def stop(self, grace: float = 1.0) -> None:
    """Stops serving and closes the store (once; later calls do nothing)."""
    if self._stop.is_set() and self._grpc_server is None:
      return
    self._stop.set()
    if self._grpc_server is not None:
      self._grpc_server.stop(grace).wait(grace + 5)
      self._grpc_server = None
    if self._ticker is not None:
      self._ticker.join(5)
    self.store.close()
    self._tmp.cleanup()

  def _tick_loop(self) -> None:
    while not self._stop.wait(self._tick_seconds):
      with self._lock:
        self.machine.tick(self._clock())

  def _authenticate(self, context, method: str, body: bytes) -> str:
    grpc = _grpc()
    headers = {k: v for k, v in context.invocation_metadata()}
    try:
      return self._verifier.verify(method, body, headers)
    except SignatureError as e:
      code = (grpc.StatusCode.RESOURCE_EXHAUSTED if e.reason == "busy"
              else grpc.StatusCode.UNAUTHENTICATED)
      context.abort(code, f"{e.reason}: {e}")

  def _register(self, request, context):
    client = self._authenticate(context, proto.METHODS["Register"], request.SerializeToString())
    name = request.name if len(request.name) <= 64 else request.name[:64]
    with self._lock:
      self.store.register_client(client, name)
      strikes = self.store.strikes(client)
    return proto.messages.RegisterResponse(key_id=client, strikes=strikes,
                                           program_sha256=self.program_sha256)

  def _heartbeat(self, request, context):
    client = self._authenticate(context, proto.METHODS["Heartbeat"],
                                request.SerializeToString())
    with self._lock:
      self.machine.tick(self._clock())
      open_ = self.machine.is_selected(client, int(request.round))
      deadline = self.machine.deadline
    return proto.messages.HeartbeatResponse(
        round_open=open_, deadline_ms=int(1000 * deadline) if (open_ and deadline) else 0)

  def _check_in(self, request, context):
    client = self._authenticate(context, proto.METHODS["CheckIn"],
                                request.SerializeToString())
    with self._lock:
      answer = self.machine.check_in(client, self._clock())
    return proto.messages.CheckInResponse(
        status=answer.status, round=answer.round or 0,
        retry_after_ms=int(1000 * (answer.retry_after or 0)),
        program_sha256=self.program_sha256 if answer.status == "selected" else "")

  def _get_program(self, request, context):
    self._authenticate(context, proto.METHODS["GetProgram"], request.SerializeToString())
    if request.sha256 != self.program_sha256:
      context.abort(_grpc().StatusCode.NOT_FOUND, "No program with this hash.")
    data = self.program
    for offset in range(0, len(data), MAX_CHUNK_BYTES):
      yield proto.messages.Blob(offset=offset, total_bytes=len(data),
                                data=data[offset:offset + MAX_CHUNK_BYTES])

  def _get_manifest(self, request, context):
    self._authenticate(context, proto.METHODS["GetManifest"], request.SerializeToString())
    return proto.messages.Manifest(json=self.manifest.to_json())

  def _get_task(self, request, context):
    client = self._authenticate(context, proto.METHODS["GetTask"], request.SerializeToString())
    with self._lock:
      if not self.machine.is_selected(client, request.round):
        context.abort(_grpc().StatusCode.FAILED_PRECONDITION,
                      f"Not selected for round {request.round}; check in first.")
      broadcasts = list(self.machine.accumulator.task.broadcasts)
    yield proto.messages.TaskPart(header=proto.messages.TaskHeader(
        round=request.round, program_sha256=self.program_sha256,
        num_values=len(broadcasts)))
    for value, t in zip(broadcasts, self._broadcast_types):
      for part in encode_value(value, t):
        yield proto.messages.TaskPart(value=part)

  def _submit(self, request_iterator, context):
    grpc = _grpc()
    raw, total = [], 0
    for data in request_iterator:  # bounded before anything is parsed or kept
      total += len(data)
      if total > self._max_submit_bytes:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"A report is at most {self._max_submit_bytes} bytes.")
      raw.append(data)
    client = self._authenticate(context, proto.METHODS["SubmitResult"], proto.stream_body(raw))
    try:
      parts = [proto.messages.SubmitPart.FromString(b) for b in raw]
    except Exception:  # noqa: BLE001 -- protobuf's DecodeError, from a signed client
      parts = None
    if not parts or parts[0].WhichOneof("part") != "header":
      outcome = self._strike(client, "a report must start with its header")
      return proto.messages.SubmitResponse(outcome=outcome)
    header, values = parts[0].header, []
    for p in parts[1:]:
      if p.WhichOneof("part") != "value":
        values = None
        break
      values.append(p.value)
    if values is None or header.num_values != len(self._output_types):
      outcome = self._strike(client, "a report's values are malformed")
      return proto.messages.SubmitResponse(outcome=outcome)
    with self._lock:
      outcome = self.machine.submit(client, int(header.round), values, self._clock())
    return proto.messages.SubmitResponse(outcome=outcome)

  def _strike(self, client: str, why: str) -> str:
    with self._lock:
      strikes = self.store.add_strike(client)
      self.store.record_event(self.machine.round, "rejected",
                              {"client": client, "reason": why, "strikes": strikes})
    return "rejected"

  @property
  def committed_rounds(self) -> int:
    """How many rounds are committed."""
    return self.store.last_committed().number
