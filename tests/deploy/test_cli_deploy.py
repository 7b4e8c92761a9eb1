"""`fedjit server`, `fedjit client run/review` and the client-data folder."""

import json
import socket
import threading

import numpy as np
import pytest

from fedjit import cli, deploy

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


def _folder(path, n, seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3)).astype(np.float32)
  deploy.save_client_folder(path, {"x": x, "y": (x[:, 0] > 0).astype(np.int32)}, ["x", "y"],
                            batch_size=2)


def test_the_client_folder_format(tmp_path):
  _folder(tmp_path / "a", 5, 0)
  ds = deploy.load_client_folder(tmp_path / "a")
  batches = list(ds.as_numpy_iterator())
  assert [len(b[0]) for b in batches] == [2, 2, 1]
  spec = json.loads((tmp_path / "a" / "dataset.json").read_text())
  spec["fields"] = ["x", "z"]
  (tmp_path / "a" / "dataset.json").write_text(json.dumps(spec))
  with pytest.raises(ValueError, match="no array for field\\(s\\) \\['z'\\]"):
    deploy.load_client_folder(tmp_path / "a")
  with pytest.raises(FileNotFoundError, match="dataset.json and data.npz"):
    deploy.load_client_folder(tmp_path / "missing")
  with pytest.raises(ValueError, match="same number of examples"):
    deploy.save_client_folder(tmp_path / "b", {"x": np.zeros(3), "y": np.zeros(4)}, ["x", "y"],
                              batch_size=1)
  # Pickled object arrays are refused.
  _folder(tmp_path / "c", 4, 1)
  np.savez(tmp_path / "c" / "data.npz", x=np.array([{"a": 1}] * 4, dtype=object),
           y=np.zeros(4, np.int32))
  with pytest.raises(ValueError, match="plain arrays"):
    deploy.load_client_folder(tmp_path / "c")


def test_server_and_clients_from_the_command_line(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "experiment.py").write_text(EXPERIMENT)
  assert cli.main(["certs", "init", "certs", "--client", "a", "--client", "b"]) == 0
  for name in "ab":
    assert cli.main(["certs", "allow", "allow.json", f"certs/clients/{name}.sign.pub",
                     "--name", name]) == 0
    _folder(tmp_path / f"data-{name}", 6, ord(name))
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  done = {}
  server = threading.Thread(target=lambda: done.__setitem__("server", cli.main([
      "server", "--process", "experiment:build_process", "--allow-list", "allow.json",
      "--store", "server.db", "--certificate", "certs/server.pem", "--key", "certs/server.key",
      "--client-ca", "certs/ca.pem", "--address", f"localhost:{port}", "--goal", "2",
      "--over-selection", "1.0", "--rounds", "1"])))
  server.start()
  connection = ["--server", f"localhost:{port}", "--ca", "certs/ca.pem"]

  def tls(name):
    return connection + ["--identity", f"certs/clients/{name}.sign.key", "--certificate",
                         f"certs/clients/{name}.pem", "--key", f"certs/clients/{name}.key"]
  # The owner reviews the server's program, then approves it.
  for _ in range(100):
    try:
      if cli.main(["client", "review"] + tls("a")) == 0:
        break
    except Exception:  # noqa: BLE001 -- the server is still starting
      pass
    threading.Event().wait(0.2)
  review = capsys.readouterr().out
  assert "It sends 3 value(s) to the server" in review
  program_hash = review.split("Program ")[1].split()[0]
  assert cli.main(["client", "approve", program_hash, "--policy", "policy.json"]) == 0
  clients = [threading.Thread(target=lambda n=n: done.__setitem__(n, cli.main(
      ["client", "run"] + tls(n) + ["--data", f"data-{n}", "--policy", "policy.json",
                                    "--rounds", "1", "--max-seconds", "60"]))) for n in "ab"]
  for t in clients:
    t.start()
  for t in clients + [server]:
    t.join(120)
  assert done == {"server": 0, "a": 0, "b": 0}
  out = capsys.readouterr().out
  assert "round 1 committed" in out and out.count("reports: accepted") == 2
  store = deploy.ServerStore("server.db")
  assert store.last_committed().number == 1
  store.close()


def test_cli_errors(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  assert cli.main(["server", "--process", "nope", "--allow-list", "a.json", "--store", "s.db",
                   "--goal", "1", "--rounds", "1", "--insecure"]) == 2
  assert "MODULE:FUNCTION" in capsys.readouterr().err
  assert cli.main(["server", "--process", "missing_module:f", "--allow-list", "a.json",
                   "--store", "s.db", "--goal", "1", "--rounds", "1", "--insecure"]) == 1
  assert "cannot load --process" in capsys.readouterr().err
  assert cli.main(["client", "review"]) == 2
  assert "--server and --identity" in capsys.readouterr().err


def test_bad_configuration_fails_fast_with_one_line(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  assert cli.main(["certs", "init", "certs", "--client", "a"]) == 0
  capsys.readouterr()
  tls = ["--identity", "certs/clients/a.sign.key", "--ca", "certs/ca.pem"]
  # no server address
  assert cli.main(["client", "run", "--data", "d", "--policy", "p.json"] + tls) == 2
  assert "needs --server and --identity" in capsys.readouterr().err
  # the data folder is missing
  assert cli.main(["client", "run", "--server", "localhost:1", "--data", "nowhere",
                   "--policy", "p.json"] + tls) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "nowhere/dataset.json is missing" in err
  # an unreadable certificate
  _folder(tmp_path / "d", 4, 0)
  assert cli.main(["client", "run", "--server", "localhost:1", "--data", "d", "--policy",
                   "p.json", "--identity", "certs/clients/a.sign.key", "--ca",
                   "certs/missing.pem"]) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "certs/missing.pem" in err
  # a server certificate that is not one
  (tmp_path / "bad.pem").write_text("not a certificate")
  assert cli.main(["server", "--process", "x:y", "--allow-list", "a.json", "--store", "s.db",
                   "--goal", "1", "--rounds", "1", "--certificate", "bad.pem",
                   "--key", "certs/missing.key"]) == 1
  assert capsys.readouterr().err.count("\n") == 1
