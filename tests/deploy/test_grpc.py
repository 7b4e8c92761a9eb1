"""The server and client runtime over gRPC on loopback, with mutual TLS and
signed requests: real rounds, and hostile clients."""

import threading

import grpc
import jax
import numpy as np
import pytest

from conftest import batched_clients, softmax3_model

import fedjit
from fedjit import deploy, learning
from fedjit.deploy import _protocol as proto


@pytest.fixture
def world(tmp_path):
  files = deploy.make_certificates(tmp_path / "certs", clients=["a", "b", "c", "d"])
  allow = deploy.AllowList()
  for c in files.clients:
    allow.add(open(c.public_key).read(), c.name)
  trainer = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  server = deploy.Server(
      trainer, allow_list=allow, store_path=tmp_path / "server.db",
      config=deploy.RoundConfig(goal_count=2, over_selection=1.0, selection_timeout=30,
                                reporting_deadline=30),
      certificate=files.server_certificate, key=files.server_key,
      client_ca=files.ca_certificate, address="localhost:0")
  port = server.start()
  policy = deploy.ApprovalPolicy()
  policy.approve(server.program_sha256)
  data = dict(zip("abcd", batched_clients([4, 6, 2, 8])))

  def client(name, policy=policy, identity=None):
    c = {x.name: x for x in files.clients}[name]
    return deploy.Client(f"localhost:{port}", identity or c.signing_key, data[name], policy,
                         ca_certificate=files.ca_certificate, certificate=c.certificate,
                         key=c.key, timeout=30)
  yield trainer, server, client, data, files, port
  server.stop()


def test_rounds_over_the_network_equal_the_simulated_rounds(world):
  trainer, server, client, data, files, _ = world
  names = {deploy.ClientIdentity.load(c.signing_key).key_id: c.name for c in files.clients}
  clients = [client(n) for n in "abcd"]
  results = {}
  threads = [threading.Thread(target=lambda c=c, n=n: results.__setitem__(
      n, c.run(max_rounds=1, max_seconds=60))) for c, n in zip(clients, "abcd")]
  for t in threads:
    t.start()
  for t in threads:
    t.join(90)
  assert server.committed_rounds >= 1
  commits = server.store.events("commit")
  state = trainer.initialize()
  for _, _, summary in commits:
    reporters = [names[k] for k in summary["reporters"]]
    assert len(reporters) == 2
    with fedjit.backend("reference"):
      state = trainer.next(state, [data[n] for n in reporters]).state
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
                         trainer.get_model_weights(state).trainable,
                         trainer.get_model_weights(server.state).trainable)
  assert server.committed_rounds == 2   # two rounds of two clients
  assert all(r.count("accepted") == 1 for r in results.values())
  for c in clients:
    c.close()


def test_register_and_heartbeat(world):
  _, server, client, _, files, _ = world
  c = client("a")
  reply = c.register("a")
  assert reply.key_id == c.identity.key_id and reply.strikes == 0
  assert reply.program_sha256 == server.program_sha256
  assert not c.heartbeat(1)                  # not selected yet
  answer = c._check_in(proto.messages.CheckInRequest(), metadata=c._headers("CheckIn", b""))
  assert c.heartbeat(answer.round)
  assert not c.heartbeat(answer.round + 1)
  c.close()


def test_unapproved_programs_are_not_downloaded_or_run(world):
  _, server, client, _, _, _ = world
  c = client("a", policy=deploy.ApprovalPolicy())
  assert c.step()[0] == "not_approved"
  assert c._programs == {}
  c.close()


def test_an_unknown_key_is_refused(world):
  _, server, client, _, _, _ = world
  c = client("a", identity=deploy.ClientIdentity.generate())
  with pytest.raises(grpc.RpcError) as e:
    c.step()
  assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
  assert "unknown_key" in e.value.details()
  c.close()


def test_garbage_and_replayed_reports_never_reach_the_model(world):
  trainer, server, client, data, files, port = world
  c = client("a")
  M = proto.messages
  answer = c._check_in(M.CheckInRequest(), metadata=c._headers("CheckIn", b""))
  assert answer.status == "selected"
  # A report of the right shape but NaN values, signed by a valid client.
  program = c._program(answer.program_sha256)
  outputs = fedjit.core.DistributedRound.run_client(
      program, [data["a"]], c._task(answer.round, answer.program_sha256, program))
  bad = jax.tree_util.tree_map(lambda x: np.full_like(np.asarray(x), np.nan)
                               if np.issubdtype(np.asarray(x).dtype, np.floating) else x,
                               outputs)
  assert c._send(answer.round, program, bad) == "rejected"
  assert server.store.strikes(c.identity.key_id) == 1
  # A report that is not a report at all.
  parts = [b"\x01\x02garbage"]
  reply = c._submit(iter(parts), metadata=c._headers("SubmitResult", proto.stream_body(parts)))
  assert reply.outcome == "rejected"
  # A captured, valid request replayed: refused by the signature layer.
  parts = [M.SubmitPart(header=M.SubmitHeader(round=answer.round, num_values=0))
           .SerializeToString()]
  headers = c._headers("SubmitResult", proto.stream_body(parts))
  c._submit(iter(parts), metadata=headers)
  with pytest.raises(grpc.RpcError) as e:
    c._submit(iter(parts), metadata=headers)
  assert "replay" in e.value.details()
  # A body that does not match the signature.
  with pytest.raises(grpc.RpcError) as e:
    c._submit(iter(parts + [b"x"]), metadata=c._headers("SubmitResult",
                                                         proto.stream_body(parts)))
  assert "bad_signature" in e.value.details()
  assert server.committed_rounds == 0     # nothing touched the model
  jax.tree_util.tree_map(np.testing.assert_array_equal,
                         trainer.get_model_weights(trainer.initialize()).trainable,
                         trainer.get_model_weights(server.state).trainable)
  c.close()


def test_mutual_tls_refuses_a_client_without_a_certificate(world):
  _, _, _, data, files, port = world
  c = deploy.Client(f"localhost:{port}", files.clients[0].signing_key, data["a"],
                    deploy.ApprovalPolicy(), ca_certificate=files.ca_certificate, timeout=10)
  with pytest.raises(grpc.RpcError) as e:
    c.step()
  assert e.value.code() == grpc.StatusCode.UNAVAILABLE
  c.close()


def test_the_server_needs_tls_or_an_explicit_insecure(tmp_path):
  trainer = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  with pytest.raises(ValueError, match="TLS certificate and key"):
    deploy.Server(trainer, allow_list=deploy.AllowList(), store_path=tmp_path / "s.db",
                  config=deploy.RoundConfig(goal_count=1))
