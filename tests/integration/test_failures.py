"""Clients that die mid-round, and a server stopped and restarted at each
stage of a round: rounds complete from the rest, no committed round is lost,
and the model is the one an uninterrupted run with the same reports gives."""

import socket
import threading

import jax
import numpy as np

from fedjit import deploy
from fedjit.deploy import _protocol as proto

from deployment_world import deployment  # noqa: F401 (a fixture)


def _same_model(d):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
                         d.trainer.get_model_weights(d.replay()).trainable,
                         d.trainer.get_model_weights(d.server.state).trainable)


def test_thirty_percent_of_the_clients_die_mid_round(deployment):
  d = deployment(10, deploy.RoundConfig(goal_count=7, over_selection=1.43, min_reports=6,
                                        selection_timeout=2.0, reporting_deadline=20.0))
  d.start_server()
  clients = {n: d.client(n) for n in d.names}
  # c07, c08 and c09 check in, are selected, and die before reporting.
  for n in d.names[7:]:
    c = clients.pop(n)
    answer = c._check_in(proto.messages.CheckInRequest(), metadata=c._headers("CheckIn", b""))
    assert answer.status == "selected"
    c.close()
  results = {}
  threads = [threading.Thread(target=lambda n=n, c=c: results.__setitem__(
      n, c.run(max_rounds=2, max_seconds=60))) for n, c in clients.items()]
  for t in threads:
    t.start()
  for t in threads:
    t.join(90)
  commits = d.server.store.events("commit")
  assert [r for r, _, _ in commits] == [1, 2]
  first = commits[0][2]
  assert first["selected"] == 10 and first["reports"] == 7 and first["dropped"] == 3
  assert all(d.key_ids[k] not in ("c07", "c08", "c09") for _, _, s in commits
             for k in s["reporters"])
  _same_model(d)
  for c in clients.values():
    c.close()


def test_a_server_stopped_at_each_stage_resumes_without_losing_a_round(deployment):
  d = deployment(4, deploy.RoundConfig(goal_count=2, over_selection=1.0,
                                       selection_timeout=30.0, reporting_deadline=30.0))
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

  def start():
    d.server = deploy.Server(
        d.trainer, allow_list=d.allow, store_path=d.tmp_path / "server.db", config=d.config,
        certificate=d.files.server_certificate, key=d.files.server_key,
        client_ca=d.files.ca_certificate, address=f"localhost:{port}")
    d.port = d.server.start()
    d.policy = deploy.ApprovalPolicy()
    d.policy.approve(d.server.program_sha256)

  start()
  d.server.stop()                       # before selection
  start()
  clients = {n: d.client(n) for n in d.names}
  assert clients["c00"].step()[0] == "accepted"     # round 1 collecting: 1 of 2 reports
  d.server.stop()                       # while collecting: the attempt is lost
  start()
  assert d.server.committed_rounds == 0 and d.server.machine.round == 1
  for n in ("c00", "c01"):              # c00 reports again, to the new attempt
    assert clients[n].step()[0] == "accepted"
  assert d.server.committed_rounds == 1
  d.server.stop()                       # just after a commit
  start()
  assert d.server.committed_rounds == 1 and d.server.machine.round == 2
  for n in ("c02", "c03", "c00", "c01"):
    assert clients[n].step()[0] == "accepted"
  assert [r for r, _, _ in d.server.store.events("commit")] == [1, 2, 3]
  reporters = [[d.key_ids[k] for k in s["reporters"]]
               for _, _, s in d.server.store.events("commit")]
  assert reporters == [["c00", "c01"], ["c02", "c03"], ["c00", "c01"]]
  _same_model(d)
  for c in clients.values():
    c.close()
