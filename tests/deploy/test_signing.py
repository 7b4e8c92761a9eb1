"""Signed requests: Ed25519 over method, body hash, timestamp and nonce; an
allow-list; replay protection. Hostile inputs throughout."""

import base64
import json
import os
import stat

import pytest

from fedjit import deploy
from fedjit.deploy import AllowList, ClientIdentity, RequestVerifier, SignatureError

METHOD = "/fedjit.Server/SubmitResult"
BODY = b"\x08\x01serialized-update"


class Clock:
  def __init__(self, t=1_800_000_000.0):
    self.t = t

  def __call__(self):
    return self.t


@pytest.fixture
def setup():
  identity = ClientIdentity.generate()
  allow = AllowList()
  allow.add(identity.public_key_text(), "client-1")
  clock = Clock()
  return identity, RequestVerifier(allow, window_seconds=60, clock=clock), clock


def _reason(verifier, method, body, headers):
  with pytest.raises(SignatureError) as e:
    verifier.verify(method, body, headers)
  return e.value.reason


def test_a_signed_request_is_accepted_once(setup):
  identity, verifier, clock = setup
  headers = identity.sign(METHOD, BODY, now=clock.t)
  assert set(headers) == set(deploy.HEADERS)
  assert verifier.verify(METHOD, BODY, headers) == identity.key_id
  assert _reason(verifier, METHOD, BODY, headers) == "replay"
  # A new request (fresh nonce) from the same client is fine.
  assert verifier.verify(METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t))


def test_a_captured_signature_does_not_cover_another_body_or_method(setup):
  identity, verifier, clock = setup
  headers = identity.sign(METHOD, BODY, now=clock.t)
  assert _reason(verifier, METHOD, BODY + b"x", headers) == "bad_signature"
  assert _reason(verifier, "/fedjit.Server/GetTask", BODY, headers) == "bad_signature"
  # Nor another timestamp or nonce with the same signature.
  later = dict(headers, **{"fedjit-timestamp-ms": str(int(headers["fedjit-timestamp-ms"]) + 1)})
  assert _reason(verifier, METHOD, BODY, later) == "bad_signature"
  other_nonce = dict(headers, **{"fedjit-nonce": "0" * 32})
  assert _reason(verifier, METHOD, BODY, other_nonce) == "bad_signature"
  # Failed attempts do not burn the nonce: the genuine request still passes.
  assert verifier.verify(METHOD, BODY, headers) == identity.key_id


def test_another_clients_key_cannot_sign_for_an_allowed_id(setup):
  identity, verifier, clock = setup
  impostor = ClientIdentity.generate()
  headers = impostor.sign(METHOD, BODY, now=clock.t)
  assert _reason(verifier, METHOD, BODY, headers) == "unknown_key"
  forged = dict(headers, **{"fedjit-key-id": identity.key_id})
  assert _reason(verifier, METHOD, BODY, forged) == "bad_signature"


def test_stale_and_future_timestamps_are_refused(setup):
  identity, verifier, clock = setup
  assert _reason(verifier, METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t - 61)) == "stale"
  assert _reason(verifier, METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t + 61)) == "stale"
  assert verifier.verify(METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t - 59))


def test_a_nonce_is_remembered_for_as_long_as_its_timestamp_is_accepted(setup):
  identity, verifier, clock = setup
  headers = identity.sign(METHOD, BODY, now=clock.t)
  verifier.verify(METHOD, BODY, headers)
  clock.t += 59.9
  assert _reason(verifier, METHOD, BODY, headers) == "replay"
  clock.t += 0.2   # now outside the window: forgotten, and refused as stale
  assert _reason(verifier, METHOD, BODY, headers) == "stale"
  assert len(verifier._seen) == 0


def test_a_full_nonce_store_refuses_instead_of_forgetting():
  identity = ClientIdentity.generate()
  clock = Clock()
  verifier = RequestVerifier({identity.key_id: identity.public_key_bytes},
                             window_seconds=60, max_nonces=2, clock=clock)
  first = identity.sign(METHOD, BODY, now=clock.t)
  verifier.verify(METHOD, BODY, first)
  verifier.verify(METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t))
  assert _reason(verifier, METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t)) == "busy"
  assert _reason(verifier, METHOD, BODY, first) == "replay"   # still remembered
  clock.t += 61
  assert verifier.verify(METHOD, BODY, identity.sign(METHOD, BODY, now=clock.t))


@pytest.mark.parametrize("change, reason", [
    ({"fedjit-signature": None}, "missing"),
    ({"fedjit-key-id": None}, "missing"),
    ({"fedjit-nonce": "XYZ" * 10}, "malformed"),
    ({"fedjit-nonce": "a" * 31}, "malformed"),
    ({"fedjit-timestamp-ms": "-5"}, "malformed"),
    ({"fedjit-timestamp-ms": "1e9"}, "malformed"),
    ({"fedjit-timestamp-ms": "9" * 40}, "malformed"),
    ({"fedjit-key-id": "ab"}, "malformed"),
    ({"fedjit-key-id": "A" * 64}, "malformed"),
    ({"fedjit-signature": "not base64!"}, "malformed"),
    ({"fedjit-signature": base64.b64encode(b"x" * 63).decode()}, "malformed"),
    ({"fedjit-signature": "A" * 100000}, "malformed"),
    ({"fedjit-signature": 12345}, "malformed"),
])
def test_hostile_headers_are_refused_before_use(setup, change, reason):
  identity, verifier, clock = setup
  headers = identity.sign(METHOD, BODY, now=clock.t)
  for k, v in change.items():
    if v is None:
      del headers[k]
    else:
      headers[k] = v
  assert _reason(verifier, METHOD, BODY, headers) == reason
  assert len(verifier._seen) == 0


def test_bad_methods_bodies_and_header_containers(setup):
  identity, verifier, clock = setup
  headers = identity.sign(METHOD, BODY, now=clock.t)
  assert _reason(verifier, "/fedjit.Server/Get\0Task", BODY, headers) == "malformed"
  assert _reason(verifier, METHOD, "text", headers) == "malformed"
  assert _reason(verifier, METHOD, BODY, None) == "missing"
  with pytest.raises(ValueError, match="gRPC method name"):
    identity.sign("GetTask\n", BODY)
  with pytest.raises(TypeError, match="must be bytes"):
    identity.sign(METHOD, "text")
  # bytes headers (as gRPC metadata may carry) are read as ASCII
  as_bytes = {k: v.encode() for k, v in headers.items()}
  assert verifier.verify(METHOD, BODY, as_bytes) == identity.key_id


def test_identity_save_and_load(tmp_path):
  identity = ClientIdentity.generate()
  path = tmp_path / "me.sign.key"
  identity.save(path)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
  assert (tmp_path / "me.sign.pub").read_text().strip() == identity.public_key_text()
  assert ClientIdentity.load(path).key_id == identity.key_id
  with pytest.raises(FileExistsError, match="already exists"):
    identity.save(path)
  (tmp_path / "junk.key").write_bytes(b"not a key")
  with pytest.raises(ValueError, match="not a PEM private key"):
    ClientIdentity.load(tmp_path / "junk.key")
  with pytest.raises(TypeError, match="Ed25519 private key"):
    ClientIdentity("key")


def test_allow_list_round_trip_and_tampering(tmp_path):
  a, b = ClientIdentity.generate(), ClientIdentity.generate()
  allow = AllowList()
  kid_a = allow.add(a.public_key_text(), "a")
  allow.add(b.public_key_bytes, "b")
  assert kid_a == deploy.key_id(a.public_key_bytes)
  path = tmp_path / "allow.json"
  allow.save(path)
  loaded = AllowList.load(path)
  assert [n.name for _, n in loaded.items()] == ["a", "b"]
  assert loaded.public_key(kid_a) == a.public_key_bytes
  with pytest.raises(ValueError, match="already belongs"):
    loaded.add(b.public_key_text(), "a")
  assert loaded.revoke("b") == b.key_id and b.key_id not in loaded
  with pytest.raises(KeyError, match="matches no allowed key"):
    loaded.revoke("b")
  with pytest.raises(KeyError):
    loaded.revoke("")          # an empty prefix matches nothing
  # A swapped public key no longer matches its id.
  doc = json.loads(path.read_text())
  doc["keys"][kid_a]["public_key"] = b.public_key_text()
  path.write_text(json.dumps(doc))
  with pytest.raises(ValueError, match="was altered"):
    AllowList.load(path)
  path.write_text("{not json")
  with pytest.raises(ValueError, match="not a fedjit allow-list"):
    AllowList.load(path)
  path.write_text(json.dumps({"version": 1, "keys": {kid_a: {"name": "a"}}}))
  with pytest.raises(ValueError, match="exactly 'name' and 'public_key'"):
    AllowList.load(path)
  with pytest.raises(ValueError, match="base64 of 32 raw Ed25519 bytes"):
    AllowList().add("AAAA", "x")
  with pytest.raises(ValueError, match="client name"):
    AllowList().add(a.public_key_text(), "../etc")
  assert len(AllowList.load(tmp_path / "missing.json")) == 0
