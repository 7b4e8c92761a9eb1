"""`fedjit certs`: the authority, server and client certificates work for
(mutual) TLS, keys are private, nothing is half written or silently replaced."""

import os
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fedjit import cli, deploy


def _cert(path):
  with open(path, "rb") as fh:
    return x509.load_pem_x509_certificate(fh.read())


def test_the_files_and_their_constraints(tmp_path):
  files = deploy.make_certificates(tmp_path / "certs", clients=["a", "b"],
                                   server_names=["localhost", "127.0.0.1", "fl.example.org"])
  ca, server = _cert(files.ca_certificate), _cert(files.server_certificate)
  assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
  assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
  server.verify_directly_issued_by(ca)
  san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
  assert san.get_values_for_type(x509.DNSName) == ["localhost", "fl.example.org"]
  assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
  assert ExtendedKeyUsageOID.SERVER_AUTH in server.extensions.get_extension_for_class(
      x509.ExtendedKeyUsage).value
  assert [c.name for c in files.clients] == ["a", "b"]
  for c in files.clients:
    cert = _cert(c.certificate)
    cert.verify_directly_issued_by(ca)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert deploy.ClientIdentity.load(c.signing_key).public_key_text() == open(
        c.public_key).read().strip()
  for secret in [files.ca_key, files.server_key] + [c.key for c in files.clients] + [
      c.signing_key for c in files.clients]:
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600, secret
  # Each client has its own keys.
  assert len({open(c.signing_key).read() for c in files.clients}) == 2


def test_nothing_is_replaced_without_overwrite(tmp_path):
  files = deploy.make_certificates(tmp_path, clients=["a"])
  before = {p: open(p, "rb").read() for p in (files.ca_certificate, files.ca_key)}
  with pytest.raises(FileExistsError, match="already exists.*--force"):
    deploy.make_certificates(tmp_path, clients=["a"])
  assert {p: open(p, "rb").read() for p in before} == before
  with pytest.raises(FileExistsError, match="replace client 'a'"):
    deploy.add_client(tmp_path, "a")
  c = deploy.add_client(tmp_path, "c")
  _cert(c.certificate).verify_directly_issued_by(_cert(files.ca_certificate))
  again = deploy.make_certificates(tmp_path, clients=["a"], overwrite=True)
  assert open(again.ca_key, "rb").read() != before[files.ca_key]
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


@pytest.mark.parametrize("kwargs, match", [
    ({"clients": ["../up"]}, "client name"),
    ({"clients": ["a", "a"]}, "distinct"),
    ({"server_names": []}, "at least one name"),
    ({"server_names": ["bad name"]}, "neither an IP address nor a DNS name"),
    ({"valid_days": 0}, "valid_days"),
])
def test_bad_arguments_write_nothing(tmp_path, kwargs, match):
  with pytest.raises(ValueError, match=match):
    deploy.make_certificates(tmp_path / "out", **kwargs)
  assert not (tmp_path / "out").exists()


def test_add_client_needs_an_authority(tmp_path):
  with pytest.raises(FileNotFoundError, match="fedjit certs init"):
    deploy.add_client(tmp_path, "a")


def _tls_round_trip(files, client, server_name="localhost"):
  """One mutual-TLS exchange over loopback: the server requires a client
  certificate from the CA; returns the client's certificate subject as the
  server saw it."""
  server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  server_ctx.load_cert_chain(files.server_certificate, files.server_key)
  server_ctx.load_verify_locations(files.ca_certificate)
  server_ctx.verify_mode = ssl.CERT_REQUIRED
  client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
  client_ctx.load_verify_locations(files.ca_certificate)
  if client is not None:
    client_ctx.load_cert_chain(client.certificate, client.key)
  listener = socket.create_server(("127.0.0.1", 0))
  listener.settimeout(10)
  port = listener.getsockname()[1]
  seen = {}

  def serve():
    try:
      conn, _ = listener.accept()
      conn.settimeout(10)
      with server_ctx.wrap_socket(conn, server_side=True) as tls:
        seen["peer"] = dict(x[0] for x in tls.getpeercert()["subject"])
        tls.sendall(tls.recv(16))
    except (ssl.SSLError, OSError) as e:
      seen["error"] = e

  thread = threading.Thread(target=serve, daemon=True)
  thread.start()
  try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
      with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(b"ping")
        assert tls.recv(16) == b"ping"
  finally:
    thread.join(10)
    listener.close()
  return seen


def test_the_certificates_make_a_mutual_tls_connection(tmp_path):
  files = deploy.make_certificates(tmp_path, clients=["hospital-a"])
  assert _tls_round_trip(files, files.clients[0])["peer"] == {"commonName": "hospital-a"}


def test_tls_refuses_a_client_without_a_certificate_and_a_wrong_server_name(tmp_path):
  files = deploy.make_certificates(tmp_path, clients=["a"])
  with pytest.raises((ssl.SSLError, OSError)):
    _tls_round_trip(files, None)
  with pytest.raises(ssl.SSLCertVerificationError, match="match"):
    _tls_round_trip(files, files.clients[0], server_name="evil.example.org")
  # A certificate from another authority is not trusted.
  other = deploy.make_certificates(tmp_path / "other", clients=["a"])
  with pytest.raises((ssl.SSLError, OSError)):
    _tls_round_trip(files, other.clients[0])


def test_the_cli(tmp_path, capsys):
  folder, allow = str(tmp_path / "certs"), str(tmp_path / "allow.json")
  assert cli.main(["certs", "init", folder, "--client", "a", "--client", "b"]) == 0
  assert "2 client(s)" in capsys.readouterr().out
  assert cli.main(["certs", "init", folder]) == 1
  assert "already exists" in capsys.readouterr().err
  assert cli.main(["certs", "client", folder, "c"]) == 0
  pub = os.path.join(folder, "clients", "a.sign.pub")
  assert cli.main(["certs", "allow", allow, pub, "--name", "a"]) == 0
  kid = deploy.ClientIdentity.load(os.path.join(folder, "clients", "a.sign.key")).key_id
  assert kid in capsys.readouterr().out
  assert cli.main(["certs", "list", allow]) == 0
  assert f"{kid}  a" in capsys.readouterr().out
  assert cli.main(["certs", "allow", allow, os.path.join(folder, "ca.pem"), "--name", "x"]) == 1
  assert "base64 of 32 raw Ed25519 bytes" in capsys.readouterr().err
  assert cli.main(["certs", "revoke", allow, kid[:8]]) == 0
  assert cli.main(["certs", "revoke", allow, "a"]) == 1
  assert "matches no allowed key" in capsys.readouterr().err
