"""A server and 20 client processes (each its own Python, importing fedjit
afresh) run 3 rounds of FedAvg over mutual TLS and end with the model that
the vectorized simulation of the same process gives on the same reports."""

import json
import subprocess
import sys

import numpy as np

from fedjit import deploy

from deployment_world import deployment  # noqa: F401 (a fixture)

CLIENTS = r"""
import json, sys, threading
from fedjit import deploy
spec = json.load(open(sys.argv[1]))
results = {}
def run(c):
  client = deploy.Client(spec["address"], c["signing_key"], deploy.load_client_folder(c["data"]),
                         deploy.ApprovalPolicy.load(spec["policy"]),
                         ca_certificate=spec["ca"], certificate=c["certificate"], key=c["key"])
  results[c["name"]] = client.run(max_rounds=spec["rounds"], max_seconds=120)
  client.close()
threads = [threading.Thread(target=run, args=(c,)) for c in spec["clients"]]
for t in threads: t.start()
for t in threads: t.join(120)
print(json.dumps(results))
"""


def test_twenty_client_processes(deployment, tmp_path):
  d = deployment(20, deploy.RoundConfig(goal_count=20, over_selection=1.0,
                                        selection_timeout=60.0, reporting_deadline=60.0))
  server = d.start_server()
  policy = tmp_path / "policy.json"
  d.policy.save(policy)
  for name in d.names:   # each client's data as a folder on its "device"
    batches = d.data[name]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    deploy.save_client_folder(tmp_path / "data" / name, {"x": x, "y": y}, ["x", "y"],
                              batch_size=2)
  children = []
  for p in range(20):
    spec = {"address": f"localhost:{d.port}", "policy": str(policy), "rounds": 3,
            "ca": d.files.ca_certificate, "clients": [
                {"name": c.name, "signing_key": c.signing_key, "certificate": c.certificate,
                 "key": c.key, "data": str(tmp_path / "data" / c.name)}
                for c in d.files.clients[p:p + 1]]}
    path = tmp_path / f"spec{p}.json"
    path.write_text(json.dumps(spec))
    children.append(subprocess.Popen([sys.executable, "-c", CLIENTS, str(path)],
                                     stdout=subprocess.PIPE, text=True))
  outcomes = {}
  for child in children:
    out, _ = child.communicate(timeout=240)
    assert child.returncode == 0
    outcomes.update(json.loads(out.strip().splitlines()[-1]))
  assert sorted(outcomes) == d.names
  assert all(o == ["accepted"] * 3 for o in outcomes.values()), outcomes
  assert [r for r, _, _ in server.store.events("commit")] == [1, 2, 3]
  import jax
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                         d.trainer.get_model_weights(d.replay()).trainable,
                         d.trainer.get_model_weights(server.state).trainable)
