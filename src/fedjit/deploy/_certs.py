"""Certificates for a deployment (`fedjit certs`): a certificate authority, the
server's TLS certificate, and for each client a TLS certificate (for mutual
TLS) and an Ed25519 signing key (for signed requests).

TLS keys are ECDSA P-256 (what every gRPC build accepts); certificates are
X.509 v3 with the usual constraints (the CA may sign only end-entity
certificates; the server's is for serverAuth with its DNS names and IP
addresses as subject alternative names; a client's is for clientAuth).
Private keys are written with mode 0600, every file atomically.

Layout of the folder:

    ca.pem  ca.key                      the authority (keep ca.key offline)
    server.pem  server.key              the server's TLS certificate and key
    clients/<name>.pem  <name>.key      a client's TLS certificate and key
    clients/<name>.sign.key  .sign.pub  a client's request-signing key
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import re
from typing import Sequence

from fedjit.deploy._files import write_atomic
from fedjit.deploy._signing import ClientIdentity

__all__ = ["CertificateFiles", "make_certificates", "add_client"]

_NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def _x509():
  try:
    from cryptography import x509
  except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("fedjit.deploy needs the 'cryptography' package: "
                      "pip install 'fedjit[deploy]'") from e
  return x509


@dataclasses.dataclass(frozen=True)
class ClientFiles:
  """A client's files: TLS `certificate` and `key`, `signing_key`, `public_key`."""
  name: str
  certificate: str
  key: str
  signing_key: str
  public_key: str


@dataclasses.dataclass(frozen=True)
class CertificateFiles:
  """What `make_certificates` wrote (paths)."""
  folder: str
  ca_certificate: str
  ca_key: str
  server_certificate: str
  server_key: str
  clients: tuple


def _check_name(name: str) -> str:
  if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name.startswith("."):
    raise ValueError(f"A client name is 1-64 characters of letters, digits and . _ @ - "
                     f"(not starting with '.'), got {name!r}.")
  return name


def _check_days(valid_days: int) -> int:
  if isinstance(valid_days, bool) or not isinstance(valid_days, int) or not (
      1 <= valid_days <= 3650):
    raise ValueError(f"valid_days must be an int between 1 and 3650, got {valid_days!r}.")
  return valid_days


def _new_key():
  from cryptography.hazmat.primitives.asymmetric import ec
  return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
  from cryptography.hazmat.primitives import serialization as s
  return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


def _cert_pem(cert) -> bytes:
  from cryptography.hazmat.primitives import serialization as s
  return cert.public_bytes(s.Encoding.PEM)


def _builder(subject_cn: str, issuer, public_key, valid_days: int):
  x509 = _x509()
  from cryptography.x509.oid import NameOID
  now = datetime.datetime.now(datetime.timezone.utc)
  return (x509.CertificateBuilder()
          .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
          .issuer_name(issuer)
          .public_key(public_key)
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=valid_days))
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _sign(builder, ca_key):
  from cryptography.hazmat.primitives import hashes
  return builder.sign(ca_key, hashes.SHA256())


def _end_entity(builder, ca_cert, server: bool):
  x509 = _x509()
  from cryptography.x509.oid import ExtendedKeyUsageOID
  usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
  return (builder
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                       content_commitment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=False,
                                       crl_sign=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
              ca_cert.public_key()), critical=False))


def _subject_alt_names(server_names: Sequence[str]):
  x509 = _x509()
  names = []
  for name in server_names:
    if not isinstance(name, str) or not name or len(name) > 253:
      raise ValueError(f"A server name is a DNS name or an IP address, got {name!r}.")
    try:
      names.append(x509.IPAddress(ipaddress.ip_address(name)))
    except ValueError:
      if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?", name):
        raise ValueError(f"{name!r} is neither an IP address nor a DNS name.") from None
      names.append(x509.DNSName(name))
  if not names:
    raise ValueError("The server certificate needs at least one name (e.g. localhost).")
  return x509.SubjectAlternativeName(names)


def _client(folder: str, name: str, ca_cert, ca_key, valid_days: int,
            overwrite: bool) -> ClientFiles:
  name = _check_name(name)
  out = os.path.join(folder, "clients")
  paths = ClientFiles(name, os.path.join(out, f"{name}.pem"), os.path.join(out, f"{name}.key"),
                      os.path.join(out, f"{name}.sign.key"),
                      os.path.join(out, f"{name}.sign.pub"))
  if not overwrite:
    for p in (paths.certificate, paths.key, paths.signing_key, paths.public_key):
      if os.path.exists(p):
        raise FileExistsError(f"{p} already exists; pass --force to replace client {name!r}.")
  key = _new_key()
  cert = _sign(_end_entity(_builder(name, ca_cert.subject, key.public_key(), valid_days),
                           ca_cert, server=False), ca_key)
  write_atomic(paths.key, _key_pem(key), secret=True)
  write_atomic(paths.certificate, _cert_pem(cert))
  ClientIdentity.generate().save(paths.signing_key, overwrite=True)
  return paths


def make_certificates(folder: str | os.PathLike, clients: Sequence[str] = ("client-1",), *,
                      server_names: Sequence[str] = ("localhost", "127.0.0.1"),
                      valid_days: int = 365, overwrite: bool = False) -> CertificateFiles:
  """A new certificate authority, server certificate and client credentials
  in `folder` (the layout is in the module docstring).

  Args:
    folder: where to write (created if missing).
    clients: the clients' names.
    server_names: the DNS names and IP addresses clients reach the server by.
    valid_days: how long the certificates are valid.
    overwrite: replace files that exist (otherwise FileExistsError, and
      nothing is written).

  Raises:
    ValueError: a malformed name or validity.
    FileExistsError: `folder` already holds a CA and `overwrite` is False.

  Example:
    >>> files = fedjit.deploy.make_certificates("certs", clients=["hospital-a"])
    >>> files.server_certificate
    'certs/server.pem'
  """
  x509 = _x509()
  folder = os.fspath(folder)
  names = [_check_name(c) for c in clients]
  if len(set(names)) != len(names):
    raise ValueError(f"Client names must be distinct, got {names}.")
  san = _subject_alt_names(list(server_names))
  valid_days = _check_days(valid_days)
  ca_cert_path, ca_key_path = os.path.join(folder, "ca.pem"), os.path.join(folder, "ca.key")
  server_cert_path = os.path.join(folder, "server.pem")
  server_key_path = os.path.join(folder, "server.key")
  if not overwrite:
    client_paths = [os.path.join(folder, "clients", f"{n}{ext}") for n in names
                    for ext in (".pem", ".key", ".sign.key", ".sign.pub")]
    for p in [ca_cert_path, ca_key_path, server_cert_path, server_key_path] + client_paths:
      if os.path.exists(p):
        raise FileExistsError(f"{p} already exists; pass --force to make a new authority "
                              f"(every certificate it signed stops being trusted), or "
                              f"`fedjit certs client` to add a client.")
  from cryptography.x509.oid import NameOID
  ca_key = _new_key()
  ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedjit deployment CA")])
  ca_cert = _sign(
      _builder("fedjit deployment CA", ca_name, ca_key.public_key(), valid_days)
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=False, key_encipherment=False,
                                   content_commitment=False, data_encipherment=False,
                                   key_agreement=False, key_cert_sign=True, crl_sign=True,
                                   encipher_only=False, decipher_only=False), critical=True),
      ca_key)
  server_key = _new_key()
  server_cert = _sign(
      _end_entity(_builder(str(server_names[0]), ca_name, server_key.public_key(), valid_days),
                  ca_cert, server=True).add_extension(san, critical=False), ca_key)
  write_atomic(ca_key_path, _key_pem(ca_key), secret=True)
  write_atomic(ca_cert_path, _cert_pem(ca_cert))
  write_atomic(server_key_path, _key_pem(server_key), secret=True)
  write_atomic(server_cert_path, _cert_pem(server_cert))
  made = tuple(_client(folder, n, ca_cert, ca_key, valid_days, overwrite=True) for n in names)
  return CertificateFiles(folder, ca_cert_path, ca_key_path, server_cert_path, server_key_path,
                          made)


def add_client(folder: str | os.PathLike, name: str, *, valid_days: int = 365,
               overwrite: bool = False) -> ClientFiles:
  """Credentials for one more client, signed by the authority in `folder`.

  Raises:
    FileNotFoundError: `folder` has no `ca.pem` / `ca.key`.
    FileExistsError: the client exists and `overwrite` is False.

  Example:
    >>> fedjit.deploy.add_client("certs", "hospital-b").signing_key
    'certs/clients/hospital-b.sign.key'
  """
  x509 = _x509()
  from cryptography.hazmat.primitives import serialization
  folder = os.fspath(folder)
  ca_cert_path, ca_key_path = os.path.join(folder, "ca.pem"), os.path.join(folder, "ca.key")
  for p in (ca_cert_path, ca_key_path):
    if not os.path.exists(p):
      raise FileNotFoundError(f"{p} is missing; make the authority first with "
                              f"`fedjit certs init {folder}`.")
  with open(ca_cert_path, "rb") as fh:
    ca_cert = x509.load_pem_x509_certificate(fh.read())
  with open(ca_key_path, "rb") as fh:
    ca_key = serialization.load_pem_private_key(fh.read(), password=None)
  return _client(folder, name, ca_cert, ca_key, _check_days(valid_days), overwrite)
