"""A server and clients in other processes (each its own Python, importing
fedjit afresh) run FedAvg over mutual TLS and end with the model that the
vectorized simulation of the same process gives on the same reports.

10 clients in 2 processes of 5 (threads) rather than the issue's 20
processes: each client pays JAX's start-up and the compilation of the
program it receives (about 1 s of CPU each, 3 s per process to start), which
20 processes would make a large share of the suite's budget on 2 cores."""

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
  results[c["name"]] = client.run(max_rounds=1, max_seconds=90)
  client.close()
threads = [threading.Thread(target=run, args=(c,)) for c in spec["clients"]]
for t in threads: t.start()
for t in threads: t.join(120)
print(json.dumps(results))
"""


def test_clients_in_other_processes(deployment, tmp_path):
  d = deployment(10, deploy.RoundConfig(goal_count=5, over_selection=1.0,
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
  for p in range(2):
    spec = {"address": f"localhost:{d.port}", "policy": str(policy),
            "ca": d.files.ca_certificate, "clients": [
                {"name": c.name, "signing_key": c.signing_key, "certificate": c.certificate,
                 "key": c.key, "data": str(tmp_path / "data" / c.name)}
                for c in d.files.clients[5 * p:5 * p + 5]]}
    path = tmp_path / f"spec{p}.json"
    path.write_text(json.dumps(spec))
    children.append(subprocess.Popen([sys.executable, "-c", CLIENTS, str(path)],
                                     stdout=subprocess.PIPE, text=True))
  outcomes = {}
  for child in children:
    out, _ = child.communicate(timeout=150)
    assert child.returncode == 0
    outcomes.update(json.loads(out.strip().splitlines()[-1]))
  assert sorted(outcomes) == d.names and all(o == ["accepted"] for o in outcomes.values())
  assert [r for r, _, _ in server.store.events("commit")] == [1, 2]
  import jax
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                         d.trainer.get_model_weights(d.replay()).trainable,
                         d.trainer.get_model_weights(server.state).trainable)
