"""Signed requests: every client request carries an Ed25519 signature over
the method, a SHA-256 hash of the body, a timestamp and a random nonce, and
the server accepts it only from an allow-listed key, inside a time window,
once.

What is signed (each field validated before anything is computed from it;
no field can contain the separator):

    b"fedjit-request-v1" NUL key_id NUL method NUL timestamp_ms NUL nonce NUL
    SHA-256(body)

Unlike a signature over a timestamp alone (Flower's node authentication), a
captured request cannot be replayed with another body (the body's hash is
signed), to another method, or a second time at all (the nonce is kept for
the whole window in which the timestamp is accepted).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import heapq
import json
import os
import re
import secrets
import threading
import time
from typing import Any, Callable, Mapping

from fedjit.deploy._files import write_atomic

__all__ = ["ClientIdentity", "AllowList", "RequestVerifier", "SignatureError", "sign_request",
           "HEADERS"]

_DOMAIN = b"fedjit-request-v1"
# gRPC metadata keys (lower case).
KEY_ID, TIMESTAMP, NONCE, SIGNATURE = ("fedjit-key-id", "fedjit-timestamp-ms", "fedjit-nonce",
                                       "fedjit-signature")
HEADERS = (KEY_ID, TIMESTAMP, NONCE, SIGNATURE)
_KEY_ID_RE = re.compile(r"[0-9a-f]{64}")
_NONCE_RE = re.compile(r"[0-9a-f]{32}")
_METHOD_RE = re.compile(r"/[A-Za-z0-9_.]{1,200}/[A-Za-z0-9_]{1,100}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,16}")
_NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def _ed25519():
  try:
    from cryptography.hazmat.primitives.asymmetric import ed25519
  except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("fedjit.deploy needs the 'cryptography' package: "
                      "pip install 'fedjit[deploy]'") from e
  return ed25519


def _serialization():
  from cryptography.hazmat.primitives import serialization
  return serialization


class SignatureError(Exception):
  """A request that the server refuses. `reason` is one of "missing",
  "malformed", "unknown_key", "stale", "bad_signature", "replay", "busy".

  Example:
    >>> try:
    ...   verifier.verify(method, body, headers)
    ... except SignatureError as e:
    ...   print(e.reason)
  """

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason


def key_id(public_key_bytes: bytes) -> str:
  """The id of an Ed25519 public key: the hex SHA-256 of its 32 raw bytes.

  Example:
    >>> key_id(identity.public_key_bytes) == identity.key_id
    True
  """
  if not isinstance(public_key_bytes, bytes) or len(public_key_bytes) != 32:
    raise ValueError(f"An Ed25519 public key is 32 raw bytes, got "
                     f"{type(public_key_bytes).__name__} of length "
                     f"{len(public_key_bytes) if isinstance(public_key_bytes, bytes) else '?'}.")
  return hashlib.sha256(public_key_bytes).hexdigest()


def _check_method(method: Any) -> str:
  if not isinstance(method, str) or not _METHOD_RE.fullmatch(method):
    raise ValueError(f"A request's method must be a gRPC method name such as "
                     f"'/fedjit.Server/GetTask', got {method!r}.")
  return method


def _check_body(body: Any) -> bytes:
  if isinstance(body, (bytearray, memoryview)):
    body = bytes(body)
  if not isinstance(body, bytes):
    raise TypeError(f"A request's body must be bytes (the serialized message), got "
                    f"{type(body).__name__}.")
  return body


def _message(kid: str, method: str, timestamp_ms: str, nonce: str, body: bytes) -> bytes:
  return b"\0".join([_DOMAIN, kid.encode(), method.encode(), timestamp_ms.encode(),
                     nonce.encode(), hashlib.sha256(body).digest()])


class ClientIdentity:
  """A client's Ed25519 signing key.

  Example:
    >>> identity = ClientIdentity.generate()
    >>> identity.save("client-1.sign.key")          # mode 0600
    >>> headers = identity.sign("/fedjit.Server/GetTask", body)
  """

  def __init__(self, private_key: Any):
    if not isinstance(private_key, _ed25519().Ed25519PrivateKey):
      raise TypeError(f"ClientIdentity wraps an Ed25519 private key (use "
                      f"ClientIdentity.generate() or .load(path)), got "
                      f"{type(private_key).__name__}.")
    self._key = private_key
    s = _serialization()
    self.public_key_bytes = private_key.public_key().public_bytes(
        s.Encoding.Raw, s.PublicFormat.Raw)
    self.key_id = key_id(self.public_key_bytes)

  @classmethod
  def generate(cls) -> "ClientIdentity":
    """A new key from the operating system's CSPRNG.

    Example:
      >>> identity = ClientIdentity.generate()
    """
    return cls(_ed25519().Ed25519PrivateKey.generate())

  @classmethod
  def load(cls, path: str | os.PathLike) -> "ClientIdentity":
    """The identity stored at `path` (PEM, PKCS #8, unencrypted).

    Raises:
      ValueError: the file is not an Ed25519 private key.

    Example:
      >>> identity = ClientIdentity.load("certs/client-1.sign.key")
    """
    with open(path, "rb") as fh:
      data = fh.read()
    try:
      key = _serialization().load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
      raise ValueError(f"{os.fspath(path)} is not a PEM private key ({e}); make one with "
                       f"`fedjit certs init`.") from None
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
      raise ValueError(f"{os.fspath(path)} holds a {type(key).__name__}, not an Ed25519 "
                       f"signing key; the TLS key (client-N.key) is not the signing key "
                       f"(client-N.sign.key).")
    return cls(key)

  def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Writes the private key to `path` (mode 0600, atomically) and the public
    key beside it (`<path without .key>.pub`, raw bytes in base64).

    Example:
      >>> identity.save("certs/client-1.sign.key")
    """
    s = _serialization()
    pem = self._key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    write_atomic(path, pem, secret=True, overwrite=overwrite)
    write_atomic(public_key_path(path), self.public_key_text().encode() + b"\n",
                 overwrite=overwrite)

  def public_key_text(self) -> str:
    """The public key as one line of base64 (what `fedjit certs allow` reads).

    Example:
      >>> identity.public_key_text()
      'pQ0...='
    """
    return base64.b64encode(self.public_key_bytes).decode()

  def sign(self, method: str, body: bytes, *, now: float | None = None,
           nonce: str | None = None) -> dict[str, str]:
    """The signature headers of one request (see `sign_request`)."""
    return sign_request(self, method, body, now=now, nonce=nonce)

  def _sign(self, message: bytes) -> bytes:
    return self._key.sign(message)


def public_key_path(private_key_path: str | os.PathLike) -> str:
  path = os.fspath(private_key_path)
  return (path[:-4] if path.endswith(".key") else path) + ".pub"


def sign_request(identity: ClientIdentity, method: str, body: bytes, *,
                 now: float | None = None, nonce: str | None = None) -> dict[str, str]:
  """The headers that authenticate one request: key id, timestamp (ms),
  a fresh 128-bit nonce (from `secrets`) and the Ed25519 signature.

  Args:
    identity: the client's `ClientIdentity`.
    method: the gRPC method, e.g. "/fedjit.Server/SubmitResult".
    body: the serialized request message.
    now: the time in seconds (default `time.time()`).
    nonce: for tests only; default a fresh random one.

  Example:
    >>> headers = sign_request(identity, "/fedjit.Server/GetTask", b"...")
    >>> sorted(headers)
    ['fedjit-key-id', 'fedjit-nonce', 'fedjit-signature', 'fedjit-timestamp-ms']
  """
  if not isinstance(identity, ClientIdentity):
    raise TypeError(f"sign_request expects a ClientIdentity, got {type(identity).__name__}.")
  method, body = _check_method(method), _check_body(body)
  timestamp_ms = str(int((time.time() if now is None else now) * 1000))
  nonce = secrets.token_hex(16) if nonce is None else nonce
  if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
    raise ValueError(f"A nonce is 32 lower-case hex digits, got {nonce!r}.")
  signature = identity._sign(_message(identity.key_id, method, timestamp_ms, nonce, body))
  return {KEY_ID: identity.key_id, TIMESTAMP: timestamp_ms, NONCE: nonce,
          SIGNATURE: base64.b64encode(signature).decode()}


@dataclasses.dataclass(frozen=True)
class AllowedKey:
  """One allow-listed client key: its `name` and raw 32-byte `public_key`."""
  name: str
  public_key: bytes


class AllowList:
  """The client keys the server accepts, stored as JSON
  (`{"version": 1, "keys": {key_id: {"name": ..., "public_key": base64}}}`)
  and managed with `fedjit certs allow / revoke / list`.

  Example:
    >>> allow = AllowList()
    >>> kid = allow.add(identity.public_key_text(), name="hospital-a")
    >>> allow.save("allowed_clients.json")
  """

  def __init__(self, keys: Mapping[str, AllowedKey] | None = None):
    self._keys: dict[str, AllowedKey] = dict(keys or {})

  def __contains__(self, kid: object) -> bool:
    return kid in self._keys

  def __len__(self) -> int:
    return len(self._keys)

  def items(self):
    """(key id, `AllowedKey`) pairs, sorted by name."""
    return sorted(self._keys.items(), key=lambda kv: (kv[1].name, kv[0]))

  def public_key(self, kid: str) -> bytes | None:
    """The raw public key of `kid`, or None if it is not allowed."""
    entry = self._keys.get(kid)
    return None if entry is None else entry.public_key

  def add(self, public_key: str | bytes, name: str) -> str:
    """Allows a key (base64 text as `ClientIdentity.public_key_text` writes,
    or 32 raw bytes) under `name`; returns its key id.

    Raises:
      ValueError: the key or name is malformed, or the name is taken by
        another key.

    Example:
      >>> allow.add(open("client-1.sign.pub").read(), name="client-1")
    """
    raw = _decode_public_key(public_key)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
      raise ValueError(f"A client name is 1-64 characters of letters, digits and . _ @ -, "
                       f"got {name!r}.")
    kid = key_id(raw)
    for other, entry in self._keys.items():
      if entry.name == name and other != kid:
        raise ValueError(f"The name {name!r} already belongs to key {other[:16]}...; revoke "
                         f"it first or choose another name.")
    self._keys[kid] = AllowedKey(name, raw)
    return kid

  def revoke(self, kid_or_name: str) -> str:
    """Removes a key (by key id, a unique prefix of at least 8 digits, or its
    name); returns the key id removed.

    Raises:
      KeyError: no such key, or the prefix is ambiguous.

    Example:
      >>> allow.revoke("client-1")
    """
    matches = [k for k, e in self._keys.items()
               if kid_or_name in (k, e.name) or (len(kid_or_name) >= 8 and
                                                 k.startswith(kid_or_name))]
    if len(matches) != 1:
      what = "no allowed key" if not matches else f"{len(matches)} keys"
      raise KeyError(f"{kid_or_name!r} matches {what}; `fedjit certs list` shows the "
                     f"allowed keys.")
    del self._keys[matches[0]]
    return matches[0]

  def save(self, path: str | os.PathLike) -> None:
    """Writes the list atomically.

    Example:
      >>> allow.save("allowed_clients.json")
    """
    doc = {"version": 1, "keys": {k: {"name": e.name,
                                      "public_key": base64.b64encode(e.public_key).decode()}
                                  for k, e in sorted(self._keys.items())}}
    write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())

  @classmethod
  def load(cls, path: str | os.PathLike) -> "AllowList":
    """The list at `path`; a missing file is an empty list.

    Raises:
      ValueError: the file is not an allow-list, or an entry's key id does
        not match its key (a tampered or hand-edited file).

    Example:
      >>> allow = AllowList.load("allowed_clients.json")
    """
    if not os.path.exists(path):
      return cls()
    where = os.fspath(path)
    try:
      with open(path, "rb") as fh:
        doc = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise ValueError(f"{where} is not a fedjit allow-list (JSON): {e}.") from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(
        doc.get("keys"), dict):
      raise ValueError(f"{where} is not a version-1 fedjit allow-list "
                       f"({{'version': 1, 'keys': {{...}}}}).")
    out = cls()
    for kid, entry in doc["keys"].items():
      if not isinstance(entry, dict) or set(entry) != {"name", "public_key"}:
        raise ValueError(f"{where}: the entry {str(kid)[:16]!r} must have exactly 'name' and "
                         f"'public_key'.")
      got = out.add(entry["public_key"], entry["name"])
      if got != kid:
        raise ValueError(f"{where}: the entry {str(kid)[:16]!r} does not match its public key "
                         f"(whose id is {got[:16]}...); the file was altered. Re-add the key "
                         f"with `fedjit certs allow`.")
    return out


def _decode_public_key(public_key: str | bytes) -> bytes:
  if isinstance(public_key, bytes) and len(public_key) == 32:
    return public_key
  if isinstance(public_key, bytes):
    public_key = public_key.decode("ascii", errors="replace")
  if not isinstance(public_key, str):
    raise ValueError(f"A public key is base64 text or 32 raw bytes, got "
                     f"{type(public_key).__name__}.")
  try:
    raw = base64.b64decode(public_key.strip(), validate=True)
  except (binascii.Error, ValueError):
    raw = b""
  if len(raw) != 32:
    raise ValueError("A public key is the base64 of 32 raw Ed25519 bytes (a .sign.pub file "
                     "written by `fedjit certs`); this is not one.")
  _ed25519().Ed25519PublicKey.from_public_bytes(raw)
  return raw


class RequestVerifier:
  """Checks the signature headers of requests (see the module docstring).

  Every header is validated before use; the signature is checked before the
  nonce is recorded, so unsigned requests cannot fill the nonce store; a
  nonce is remembered until its timestamp leaves the window, so no request
  is accepted twice. When the store is full of live nonces, requests are
  refused ("busy") rather than old nonces forgotten.

  Args:
    allow_list: an `AllowList` (or a mapping key id -> raw public key).
    window_seconds: how far a timestamp may be from the server's clock.
    max_nonces: the most live nonces kept.
    clock: the time in seconds (tests pass a fake one).

  Example:
    >>> verifier = RequestVerifier(AllowList.load("allowed_clients.json"))
    >>> client_key_id = verifier.verify(method, body, headers)   # or SignatureError
  """

  def __init__(self, allow_list: AllowList | Mapping[str, bytes], *,
               window_seconds: float = 120.0, max_nonces: int = 200_000,
               clock: Callable[[], float] = time.time):
    if not isinstance(allow_list, AllowList):
      keys = AllowList()
      for kid, raw in dict(allow_list).items():
        if keys.add(raw, f"key-{len(keys)}") != kid:
          raise ValueError(f"The key id {str(kid)[:16]!r} does not match its public key.")
      allow_list = keys
    if not (isinstance(window_seconds, (int, float)) and 0 < window_seconds <= 3600):
      raise ValueError(f"window_seconds must be in (0, 3600], got {window_seconds!r}.")
    if isinstance(max_nonces, bool) or not isinstance(max_nonces, int) or max_nonces < 1:
      raise ValueError(f"max_nonces must be an int >= 1, got {max_nonces!r}.")
    self.allow_list = allow_list
    self._window_ms = int(window_seconds * 1000)
    self._max = max_nonces
    self._clock = clock
    self._seen: dict[tuple[str, str], int] = {}
    self._expiry: list[tuple[int, str, str]] = []
    self._lock = threading.Lock()

  def verify(self, method: str, body: bytes, headers: Mapping[str, Any]) -> str:
    """The key id of the client that signed this request.

    Raises:
      SignatureError: the request is unsigned, malformed, from an unknown
        key, stale, wrongly signed, a replay, or the nonce store is full.
    """
    try:
      method, body = _check_method(method), _check_body(body)
    except (TypeError, ValueError) as e:
      raise SignatureError("malformed", str(e)) from None
    if not hasattr(headers, "get"):
      raise SignatureError("missing", "The request has no signature headers.")
    fields = {}
    for name, pattern in ((KEY_ID, _KEY_ID_RE), (TIMESTAMP, _TIMESTAMP_RE), (NONCE, _NONCE_RE),
                          (SIGNATURE, None)):
      value = headers.get(name)
      if value is None:
        raise SignatureError("missing", f"The request has no {name} header; every request "
                                        f"must be signed (fedjit.deploy.sign_request).")
      if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
      if not isinstance(value, str) or len(value) > 128 or (
          pattern is not None and not pattern.fullmatch(value)):
        raise SignatureError("malformed", f"The {name} header is malformed.")
      fields[name] = value
    try:
      signature = base64.b64decode(fields[SIGNATURE], validate=True)
    except (binascii.Error, ValueError):
      signature = b""
    if len(signature) != 64:
      raise SignatureError("malformed", f"The {SIGNATURE} header is not a base64 Ed25519 "
                                        f"signature (64 bytes).")
    kid = fields[KEY_ID]
    raw = self.allow_list.public_key(kid)
    if raw is None:
      raise SignatureError("unknown_key", f"The key {kid[:16]}... is not allowed on this "
                                          f"server (`fedjit certs allow`).")
    now_ms = int(self._clock() * 1000)
    with self._lock:
      self._forget_expired(now_ms)
    timestamp = int(fields[TIMESTAMP])
    if abs(now_ms - timestamp) > self._window_ms:
      raise SignatureError("stale", f"The request's timestamp is {(now_ms - timestamp) / 1000:.0f}"
                                    f" s from the server's clock; at most "
                                    f"{self._window_ms / 1000:.0f} s is accepted (check the "
                                    f"client's clock).")
    from cryptography.exceptions import InvalidSignature
    public = _ed25519().Ed25519PublicKey.from_public_bytes(raw)
    try:
      public.verify(signature, _message(kid, method, fields[TIMESTAMP], fields[NONCE], body))
    except InvalidSignature:
      raise SignatureError("bad_signature", "The request's signature does not match its key, "
                                            "method and body.") from None
    with self._lock:
      self._forget_expired(now_ms)
      entry = (kid, fields[NONCE])
      if entry in self._seen:
        raise SignatureError("replay", "This request was already received (its nonce was "
                                       "used); a replayed request is refused.")
      if len(self._seen) >= self._max:
        raise SignatureError("busy", "The server holds too many recent requests; retry later.")
      expires = timestamp + self._window_ms
      self._seen[entry] = expires
      heapq.heappush(self._expiry, (expires, kid, fields[NONCE]))
    return kid

  def _forget_expired(self, now_ms: int) -> None:
    # A nonce may be forgotten once its timestamp is outside the window: a
    # replay of it would be refused as stale.
    while self._expiry and self._expiry[0][0] < now_ms:
      expires, kid, nonce = heapq.heappop(self._expiry)
      if self._seen.get((kid, nonce)) == expires:
        del self._seen[(kid, nonce)]
