"""Deployment: running fedjit computations on real clients.

This package holds the foundations of the deployment runtime: `fedjit
certs` material (a certificate authority, server and client TLS
certificates, client signing keys); signed requests (Ed25519 over the
method, the body's hash, a timestamp and a nonce, checked against an
allow-list with replay protection); and values on the wire (protobuf
messages in bounded chunks, checked against their type, shape, dtype, size
and finiteness before use); the server's round state machine (Bonawitz et
al. 2019: over-selection, quorum, selection timeout, reporting deadline,
commit or abandon, strikes) on a clock it is given; and the server's SQLite
store, from which a killed server resumes after its last committed round;
and the data owner's review (a task's manifest of what its client program
sends, and the local policy of approved program hashes).
The gRPC server, the client runtime and the remote backend build on them.

Example:
  >>> files = fedjit.deploy.make_certificates("certs", clients=["hospital-a"])
  >>> identity = fedjit.deploy.ClientIdentity.load(files.clients[0].signing_key)
  >>> allow = fedjit.deploy.AllowList()
  >>> allow.add(identity.public_key_text(), name="hospital-a")
  >>> verifier = fedjit.deploy.RequestVerifier(allow)
  >>> headers = identity.sign("/fedjit.Server/GetTask", b"request")
  >>> verifier.verify("/fedjit.Server/GetTask", b"request", headers) == identity.key_id
  True
"""

from fedjit.deploy._certs import CertificateFiles, add_client, make_certificates
from fedjit.deploy._client import Client
from fedjit.deploy._data import load_client_folder, save_client_folder
from fedjit.deploy._server import Server
from fedjit.deploy._review import (ApprovalPolicy, NotApprovedError, TaskManifest,
                                   load_approved_program, read_task_bundle, write_task_bundle)
from fedjit.deploy._rounds import CheckIn, Phase, RoundConfig, RoundStateMachine
from fedjit.deploy._simulated import Availability, simulate_deployment
from fedjit.deploy._store import CommittedRound, ServerStore
from fedjit.deploy._wire import UpdateRejected, ValueDecoder, decode_value, encode_value
from fedjit.deploy._signing import (HEADERS, AllowList, ClientIdentity, RequestVerifier,
                                    SignatureError, key_id, sign_request)

__all__ = ["make_certificates", "add_client", "CertificateFiles", "ClientIdentity",
           "AllowList", "RequestVerifier", "SignatureError", "sign_request", "key_id",
           "HEADERS", "encode_value", "decode_value", "ValueDecoder", "UpdateRejected",
           "RoundConfig", "RoundStateMachine", "Phase", "CheckIn", "ServerStore", "CommittedRound",
           "Availability", "simulate_deployment", "TaskManifest", "ApprovalPolicy",
           "NotApprovedError", "write_task_bundle", "read_task_bundle", "load_approved_program",
           "Server", "Client", "load_client_folder", "save_client_folder"]
