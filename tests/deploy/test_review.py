"""The data owner's review: the manifest of what a client program sends, the
approval policy, and a runtime that loads only approved programs."""

import json

import numpy as np
import pytest

from conftest import batched_clients, softmax3_model

import fedjit
from fedjit import aggregators, cli, deploy, learning


@pytest.fixture(scope="module")
def plans():
  plain = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5))
  dp = learning.algorithms.build_unweighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5),
      model_aggregator=aggregators.DifferentiallyPrivateFactory.local_gaussian(1.0, clip=0.5))
  return fedjit.core.DistributedRound(plain), fedjit.core.DistributedRound(dp)


def test_the_manifest_says_what_leaves_the_device(plans):
  plain, dp = plans
  m = deploy.TaskManifest.from_round(plain)
  assert m.program_sha256 == plain.client_program_hash()
  kinds = [(u["intrinsic"], u["server_sees"], u["dp_noise"]) for o in m.outputs
           for u in o["sent_to"]]
  assert ("federated_sum", "aggregate", []) in kinds          # the metrics
  assert ("federated_mean", "aggregate", []) in kinds         # the model update
  text = m.review()
  assert "no differential-privacy noise" in text and m.program_sha256 in text
  noisy = deploy.TaskManifest.from_round(dp)
  assert any("DP: gaussian noise, noise multiplier 1, clip 0.5" in line and "on each client"
             in line for line in noisy.review().splitlines())
  assert deploy.TaskManifest.from_json(m.to_json()) == m


def test_only_approved_unaltered_programs_run(plans, tmp_path):
  plain, _ = plans
  bundle = tmp_path / "task.fedjit"
  manifest = deploy.write_task_bundle(bundle, plain)
  got, program = deploy.read_task_bundle(bundle)
  assert got == manifest
  policy = deploy.ApprovalPolicy()
  with pytest.raises(deploy.NotApprovedError, match="not approved.*fedjit client approve"):
    deploy.load_approved_program(policy, program)
  policy.approve(manifest.program_sha256, note="FedAvg")
  policy.save(tmp_path / "policy.json")
  loaded = deploy.load_approved_program(deploy.ApprovalPolicy.load(tmp_path / "policy.json"),
                                        program)
  # The approved program runs one client's round.
  task = plain.prepare([learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.5)).initialize()])
  outputs = plain.run_client(loaded, batched_clients([4])[:1], task.broadcasts)
  assert len(outputs) == len(plain.split.client_outputs)
  # One changed byte: refused, as altered or as unapproved.
  tampered = bytearray(bundle.read_bytes())
  tampered[-10] ^= 1
  bundle.write_bytes(bytes(tampered))
  with pytest.raises(ValueError, match="do not match the manifest's hash"):
    deploy.read_task_bundle(bundle)
  with pytest.raises(deploy.NotApprovedError):
    deploy.load_approved_program(policy, bytes(program[:-1]) + bytes([program[-1] ^ 1]))


def test_policy_and_bundle_errors(tmp_path):
  policy = deploy.ApprovalPolicy()
  with pytest.raises(ValueError, match="64 lower-case hex digits"):
    policy.approve("abc")
  assert not policy.is_approved("not a hash")
  with pytest.raises(KeyError, match="not approved"):
    policy.revoke("0" * 64)
  (tmp_path / "p.json").write_text(json.dumps({"version": 2, "approved": {}}))
  with pytest.raises(ValueError, match="version-1"):
    deploy.ApprovalPolicy.load(tmp_path / "p.json")
  (tmp_path / "p.json").write_text(json.dumps({"version": 1, "approved": {"xyz": {}}}))
  with pytest.raises(ValueError, match="hex digits"):
    deploy.ApprovalPolicy.load(tmp_path / "p.json")
  (tmp_path / "b").write_bytes(b"random bytes")
  with pytest.raises(ValueError, match="not a fedjit task bundle"):
    deploy.read_task_bundle(tmp_path / "b")
  with pytest.raises(ValueError, match="exactly the fields"):
    deploy.TaskManifest.from_json('{"program_sha256": "00"}')


def test_the_cli(plans, tmp_path, capsys):
  plain, _ = plans
  bundle, policy = str(tmp_path / "task.fedjit"), str(tmp_path / "policy.json")
  manifest = deploy.write_task_bundle(bundle, plain)
  assert cli.main(["client", "review", bundle]) == 0
  out = capsys.readouterr().out
  assert "It sends 3 value(s) to the server" in out and "federated_mean" in out
  assert cli.main(["client", "approve", manifest.program_sha256, "--policy", policy]) == 0
  assert cli.main(["client", "policy", "--policy", policy]) == 0
  assert manifest.program_sha256 in capsys.readouterr().out
  assert cli.main(["client", "approve", "nonsense", "--policy", policy]) == 1
  assert "64 lower-case hex digits" in capsys.readouterr().err
  assert cli.main(["client", "revoke", manifest.program_sha256, "--policy", policy]) == 0
  assert not deploy.ApprovalPolicy.load(policy).is_approved(manifest.program_sha256)
