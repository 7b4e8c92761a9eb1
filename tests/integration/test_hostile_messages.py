"""1,000 malformed or hostile messages against a running server: fuzzed
protobufs, wrong shapes and dtypes, NaNs, oversized payloads, unsigned,
wrongly signed, stale and replayed requests, unknown keys. Every one is
refused with the right error and the model never changes."""

import base64
import time

import grpc
import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fedjit
from fedjit import deploy
from fedjit.deploy import _protocol as proto
from fedjit.deploy import _wire as wire

from deployment_world import deployment  # noqa: F401 (a fixture)

M = proto.messages
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture
def attack(deployment):
  d = deployment(3, deploy.RoundConfig(goal_count=2, over_selection=1.0,
                                       max_strikes=10 ** 6, reporting_deadline=600))
  server = d.start_server()
  client = d.client("c00")
  answer = client._check_in(M.CheckInRequest(), metadata=client._headers("CheckIn", b""))
  assert answer.status == "selected"
  program = client._program(answer.program_sha256)
  outputs = fedjit.core.DistributedRound.run_client(
      program, [d.data["c00"]], client._task(answer.round, answer.program_sha256, program))
  types = [t.member for t in program.type_signature.result.types()]
  valid = [[M.SubmitPart(value=p) for p in wire.encode_value(v, t)]
           for v, t in zip(outputs, types)]
  header = M.SubmitPart(header=M.SubmitHeader(round=answer.round, num_values=len(outputs)))
  counts = {"sent": 0}

  def send(parts, headers=None, sign=True):
    raw = [p if isinstance(p, bytes) else p.SerializeToString() for p in parts]
    metadata = headers if headers is not None else (
        client._headers("SubmitResult", proto.stream_body(raw)) if sign else [])
    counts["sent"] += 1
    try:
      return client._submit(iter(raw), metadata=metadata, timeout=30).outcome
    except grpc.RpcError as e:
      return e.code()
  yield d, server, client, header, valid, send, counts
  initial = d.trainer.get_model_weights(d.trainer.initialize()).trainable
  assert server.committed_rounds == 0
  jax.tree_util.tree_map(np.testing.assert_array_equal, initial,
                         d.trainer.get_model_weights(server.state).trainable)
  client.close()


def test_a_thousand_hostile_messages_change_nothing(attack):
  d, server, client, header, valid, send, counts = attack

  @settings(max_examples=400, **SETTINGS)
  @given(st.lists(st.binary(max_size=300), min_size=1, max_size=6))
  def fuzzed_protobufs(raw):
    assert send(raw) in ("rejected", "wrong_round", "not_selected")

  @settings(max_examples=300, **SETTINGS)
  @given(value=st.integers(0, 2), change=st.sampled_from(
      ["dtype", "shape", "nan", "inf", "truncate", "extra", "offset", "tensor", "total"]),
      seed=st.integers(0, 10 ** 6))
  def wrong_values(value, change, seed):
    rng = np.random.default_rng(seed)
    parts = [M.SubmitPart.FromString(p.SerializeToString()) for v in valid for p in v]
    index = sum(len(v) for v in valid[:value])
    chunks = [i for i in range(index, index + len(valid[value]))
              if parts[i].value.WhichOneof("part") == "chunk"]
    target = parts[int(rng.choice(chunks))].value.chunk
    if change == "dtype":
      target.dtype = str(rng.choice(["float64", "int8", "bool", "complex64", "x"]))
    elif change == "shape":
      target.shape.append(int(rng.integers(1, 5)))
    elif change in ("nan", "inf"):
      if target.dtype != "float32" or not target.data:
        target.dtype = "float64"   # no float tensor here: make it a dtype error instead
      else:
        data = bytearray(target.data)
        at = int(rng.integers(0, len(data) // 4)) * 4
        data[at:at + 4] = np.array(np.nan if change == "nan" else np.inf,
                                   np.float32).tobytes()
        target.data = bytes(data)
    elif change == "truncate":
      target.data = target.data[:-1] if target.data else b"x"
    elif change == "extra":
      parts.insert(chunks[-1] + 1, M.SubmitPart(value=wire.ValuePart(chunk=target)))
    elif change == "offset":
      target.offset += int(rng.integers(1, 100))
    elif change == "tensor":
      target.tensor += int(rng.integers(1, 5))
    else:
      target.total_bytes += int(rng.integers(1, 100))
    assert send([header] + parts) == "rejected"

  fuzzed_protobufs()
  wrong_values()

  # Oversized payloads: refused before they are parsed.
  big = b"\x00" * (1 << 20)
  for _ in range(50):
    assert send([header.SerializeToString()] + [big] * 3) == grpc.StatusCode.RESOURCE_EXHAUSTED

  # Authentication: unsigned, wrongly signed, stale, replayed, unknown keys.
  body = [header] + [p for v in valid for p in v]
  raw = [p.SerializeToString() for p in body]
  impostor = deploy.ClientIdentity.generate()
  for i in range(50):
    assert send(raw, sign=False) == grpc.StatusCode.UNAUTHENTICATED
    headers = dict(client._headers("SubmitResult", proto.stream_body(raw)))
    sig = bytearray(base64.b64decode(headers["fedjit-signature"]))
    sig[i % 64] ^= 1
    forged = dict(headers, **{"fedjit-signature": base64.b64encode(bytes(sig)).decode()})
    assert send(raw, headers=list(forged.items())) == grpc.StatusCode.UNAUTHENTICATED
    stale = deploy.sign_request(client.identity, proto.METHODS["SubmitResult"],
                                proto.stream_body(raw), now=time.time() - 1000)
    assert send(raw, headers=list(stale.items())) == grpc.StatusCode.UNAUTHENTICATED
    unknown = deploy.sign_request(impostor, proto.METHODS["SubmitResult"],
                                  proto.stream_body(raw))
    assert send(raw, headers=list(unknown.items())) == grpc.StatusCode.UNAUTHENTICATED
    # a body signed for another request
    other = client._headers("SubmitResult", proto.stream_body(raw[:1]))
    assert send(raw, headers=other) == grpc.StatusCode.UNAUTHENTICATED
  # Replays: a request captured once is refused every later time (here the
  # captured one is a duplicate-free probe: a header that is rejected).
  probe = [M.SubmitPart(header=M.SubmitHeader(round=0, num_values=0)).SerializeToString()]
  captured = client._headers("SubmitResult", proto.stream_body(probe))
  assert send(probe, headers=captured) in ("rejected", "late", "wrong_round")
  for _ in range(49):
    assert send(probe, headers=captured) == grpc.StatusCode.UNAUTHENTICATED
  assert counts["sent"] >= 1000
