"""Clients that die mid-round: the round completes from the rest, and the
model is the one the simulation gives on the same reports. (A server killed
at each stage: test_server_killed.py.)"""

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
