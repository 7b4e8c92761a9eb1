"""The server process is killed (SIGKILL) at each stage of a round and
restarted on the same store: no committed round is lost, and training ends
at the model an uninterrupted run with the same reports gives."""

import os
import signal
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np

from conftest import batched_clients, softmax3_model

from fedjit import deploy, learning

EXPERIMENT = '''
import jax.numpy as jnp, numpy as np, optax
from fedjit import learning

def build_process():
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)},
      lambda p, x: x @ p["w"] + p["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 3]), (np.int32, [None])))
  return learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.5))
'''


def test_a_killed_server_resumes_from_its_last_committed_round(tmp_path):
  (tmp_path / "killed_experiment.py").write_text(EXPERIMENT)
  names = ["a", "b", "c", "d"]
  files = deploy.make_certificates(tmp_path / "certs", clients=names)
  allow = deploy.AllowList()
  for c in files.clients:
    allow.add(open(c.public_key).read(), c.name)
  allow.save(tmp_path / "allow.json")
  data = dict(zip(names, batched_clients([4, 6, 2, 8])))
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  command = [sys.executable, "-m", "fedjit.cli", "server", "--process",
             "killed_experiment:build_process", "--allow-list", "allow.json", "--store",
             "server.db", "--certificate", files.server_certificate, "--key", files.server_key,
             "--client-ca", files.ca_certificate, "--address", f"localhost:{port}",
             "--goal", "2", "--over-selection", "1.0", "--rounds", "3"]

  def start():
    server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().startswith("serving ")
    return server

  def kill(server):
    server.send_signal(signal.SIGKILL)
    server.wait(10)

  server = start()
  policy = deploy.ApprovalPolicy()
  program_hash = None
  clients = {}
  for c in files.clients:
    clients[c.name] = deploy.Client(f"localhost:{port}", c.signing_key, data[c.name], policy,
                                    ca_certificate=files.ca_certificate,
                                    certificate=c.certificate, key=c.key, timeout=30)
  program_hash = clients["a"].manifest().program_sha256
  policy.approve(program_hash)
  kill(server)                                   # before selection
  server = start()
  assert clients["a"].step()[0] == "accepted"    # collecting: 1 of 2
  kill(server)                                   # while collecting
  server = start()
  for n in ("a", "b"):
    assert clients[n].step()[0] == "accepted"    # round 1, a new attempt
  kill(server)                                   # right after the commit
  server = start()
  for n in ("c", "d", "a", "b"):
    assert clients[n].step()[0] == "accepted"    # rounds 2 and 3
  server.wait(30)                                # it stops after round 3
  assert server.returncode == 0
  for c in clients.values():
    c.close()

  store = deploy.ServerStore(tmp_path / "server.db")
  commits = store.events("commit")
  assert [r for r, _, _ in commits] == [1, 2, 3]
  key_ids = {deploy.ClientIdentity.load(c.signing_key).key_id: c.name for c in files.clients}
  reporters = [[key_ids[k] for k in s["reporters"]] for _, _, s in commits]
  assert reporters == [["a", "b"], ["c", "d"], ["a", "b"]]
  trainer = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  state = trainer.initialize()
  for names_ in reporters:
    state = trainer.next(state, [data[n] for n in names_]).state
  with tempfile.TemporaryDirectory() as scratch:
    path = os.path.join(scratch, "state.safetensors")
    with open(path, "wb") as fh:
      fh.write(store.last_committed().state)
    served = learning.load_checkpoint(path, trainer.initialize())
  store.close()
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
                         trainer.get_model_weights(state).trainable,
                         trainer.get_model_weights(served).trainable)
