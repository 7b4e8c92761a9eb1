"""The Ops protocol names every intrinsic, and both backends implement all of them."""

import pytest

from fedjit.core.backends.interpreter import Ops
from fedjit.core.backends.reference import ReferenceOps
from fedjit.core.backends.vectorized.intrinsics import VectorizedOps

# Every intrinsic a traced federated graph can hold (the names the tracer
# writes into intrinsic nodes), and the one the vectorized compiler adds.
INTRINSICS = [
    "federated_aggregate", "federated_broadcast", "federated_collect", "federated_eval",
    "federated_map",
    "federated_max", "federated_mean", "federated_min", "federated_secure_modular_sum",
    "federated_secure_sum", "federated_secure_sum_bitwidth", "federated_select",
    "federated_sum", "federated_value", "federated_zip",
]


def test_ops_names_every_intrinsic():
  named = sorted(n for n in vars(Ops) if n.startswith("federated_"))
  assert named == INTRINSICS
  assert "fused_map_reduce" in vars(Ops)


@pytest.mark.parametrize("ops", [ReferenceOps, VectorizedOps], ids=["reference", "vectorized"])
def test_backend_ops_implement_every_intrinsic(ops):
  missing = [n for n in INTRINSICS + ["constant", "call", "select"]
             if getattr(ops, n) is getattr(Ops, n)]
  assert missing == []
