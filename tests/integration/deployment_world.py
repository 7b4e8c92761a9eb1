"""(Imported by the integration tests: `from deployment_world import deployment`.)
A deployment on loopback: certificates, an allow-list, a server over mutual
TLS, and clients (threads in this process, each with its own key)."""

import pytest

from conftest import batched_clients, softmax3_model

from fedjit import deploy, learning


class Deployment:
  def __init__(self, tmp_path, n_clients, config, sizes=None):
    self.tmp_path = tmp_path
    self.names = [f"c{i:02d}" for i in range(n_clients)]
    self.files = deploy.make_certificates(tmp_path / "certs", clients=self.names)
    self.allow = deploy.AllowList()
    for c in self.files.clients:
      self.allow.add(open(c.public_key).read(), c.name)
    self.by_name = {c.name: c for c in self.files.clients}
    self.key_ids = {deploy.ClientIdentity.load(c.signing_key).key_id: c.name
                    for c in self.files.clients}
    self.data = dict(zip(self.names, batched_clients(sizes or [4 + 2 * (i % 3)
                                                               for i in range(n_clients)])))
    self.config = config
    self.trainer = learning.algorithms.build_weighted_fed_avg(
        softmax3_model(), learning.optimizers.build_sgdm(0.5))
    self.server = None

  def start_server(self):
    self.server = deploy.Server(
        self.trainer, allow_list=self.allow, store_path=self.tmp_path / "server.db",
        config=self.config, certificate=self.files.server_certificate,
        key=self.files.server_key, client_ca=self.files.ca_certificate, address="localhost:0")
    self.port = self.server.start()
    self.policy = deploy.ApprovalPolicy()
    self.policy.approve(self.server.program_sha256)
    return self.server

  def client(self, name, **kwargs):
    c = self.by_name[name]
    return deploy.Client(f"localhost:{self.port}", kwargs.pop("identity", c.signing_key),
                         self.data[name], kwargs.pop("policy", self.policy),
                         ca_certificate=self.files.ca_certificate, certificate=c.certificate,
                         key=c.key, timeout=30, **kwargs)

  def replay(self):
    """The model after `process.next` on the reporters of every committed round."""
    import fedjit
    state = self.trainer.initialize()
    for _, _, summary in self.server.store.events("commit"):
      with fedjit.backend("vectorized"):
        state = self.trainer.next(
            state, [self.data[self.key_ids[k]] for k in summary["reporters"]]).state
    return state


@pytest.fixture
def deployment(tmp_path):
  made = []

  def make(n_clients, config, **kwargs):
    d = Deployment(tmp_path, n_clients, config, **kwargs)
    made.append(d)
    return d
  yield make
  for d in made:
    if d.server is not None:
      try:
        d.server.stop()
      except Exception:  # noqa: BLE001 -- already stopped by the test
        pass
