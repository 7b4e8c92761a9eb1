"""The upper layers (learning, cli) reach the Federated Core only through
`fedjit.core`'s public names (issue 14, item 5): the seams they use, and a
check of their source that no private core module is imported."""

import ast
import pathlib

import jax
import numpy as np
import pytest

import fedjit
from fedjit import core

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "fedjit"
# The upper layers checked here (.importlinter checks the same, by module).
UPPER = [SRC / "learning", SRC / "simulation", SRC / "cli.py"]

BATCH = (fedjit.TensorType(np.float32, [None, 2]), fedjit.TensorType(np.int32, [None]))


def _batches(sizes, seed=0):
  rng = np.random.default_rng(seed)
  return [(rng.normal(size=(n, 2)).astype(np.float32), rng.integers(0, 5, n).astype(np.int32))
          for n in sizes]


# check_value: a Python value checked (and normalized) against a fedjit type.

def test_check_value_is_public_and_documented():
  assert "check_value" in core.__all__ and core.check_value is fedjit.check_value
  assert "Example:" in core.check_value.__doc__


def test_check_value_normalizes_tensors_structs_and_sequences():
  out = core.check_value((np.float32, [2]), [1.0, 2.0])
  assert isinstance(out, np.ndarray) and out.dtype == np.float32
  np.testing.assert_array_equal(out, [1.0, 2.0])
  pair = core.check_value(fedjit.to_type(BATCH), ([[1.0, 2.0]], [3]))
  assert isinstance(pair, tuple) and pair[1].dtype == np.int32
  batches = _batches([2, 1])
  elements = core.check_value(fedjit.SequenceType(fedjit.to_type(BATCH)), batches)
  assert isinstance(elements, list) and len(elements) == 2
  np.testing.assert_array_equal(elements[1][0], batches[1][0])


def test_check_value_names_what_was_checked_and_what_was_expected():
  with pytest.raises(fedjit.FederatedTypeError,
                     match=r"Expected a value of type int32 for client 'a', got .*str"):
    core.check_value(np.int32, "seven", what="client 'a'")
  with pytest.raises(fedjit.FederatedTypeError,
                     match=r"type <int32,float32> for pair.*2 fields.*got 1"):
    core.check_value([np.int32, np.float32], (1,), what="pair")


def test_check_value_refuses_a_federated_type_and_says_to_check_members():
  with pytest.raises(TypeError, match=r"federated type. Check the member type \(int32\)"):
    core.check_value(fedjit.FederatedType(np.int32, fedjit.CLIENTS), [1, 2])


# to_sequence: a Python dataset as a Sequence for the caller's own jax.jit code.

def test_to_sequence_is_public_and_documented():
  assert "to_sequence" in core.__all__ and core.to_sequence is fedjit.to_sequence
  assert "Example:" in core.to_sequence.__doc__


def test_to_sequence_folds_exactly_in_jit_with_a_smaller_last_batch():
  batches = _batches([4, 4, 3])
  seq = core.to_sequence(fedjit.to_type(BATCH), batches)
  assert isinstance(seq, fedjit.Sequence)

  @jax.jit
  def sums(s):
    def step(acc, batch, mask):
      x, y = batch
      return (acc[0] + (x.sum(1) * mask).sum(), acc[1] + (y * mask).sum(), acc[2] + mask.sum())
    return s.reduce((np.float32(0), np.float32(0), np.float32(0)), step, with_mask=True)

  x_sum, y_sum, count = sums(seq)
  np.testing.assert_allclose(x_sum, sum(b[0].sum() for b in batches), rtol=1e-5)
  assert float(y_sum) == sum(int(b[1].sum()) for b in batches)
  assert float(count) == 11  # the last batch's padded row is masked out


def test_to_sequence_accepts_any_spec_that_to_type_reads():
  batches = _batches([2, 2])
  a = core.to_sequence(((np.float32, [None, 2]), (np.int32, [None])), batches)
  b = core.to_sequence(fedjit.to_type(BATCH), batches)
  assert a.element_type == b.element_type
  for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(u, v)


def test_to_sequence_with_the_wrong_dtype_says_what_was_expected():
  bad = [(np.zeros((2, 2), np.float32), np.zeros(2, np.float32))]  # float labels
  with pytest.raises(fedjit.FederatedTypeError, match=r"int32\[\?\].*for test_data"):
    core.to_sequence(fedjit.to_type(BATCH), bad, what="test_data")


def test_to_sequence_of_one_array_says_how_to_pass_a_dataset():
  with pytest.raises(fedjit.FederatedTypeError,
                     match=r"for dataset.*list of elements \(for example batches\)"):
    core.to_sequence(fedjit.TensorType(np.float32, [None]), np.zeros(3, np.float32))


def test_to_sequence_refuses_an_element_type_that_is_not_a_type():
  with pytest.raises(TypeError, match="Cannot interpret"):
    core.to_sequence(object(), [np.zeros(1, np.float32)])


# The upper layers import no private core module (function-level imports too).

def _private_core_imports(path: pathlib.Path, root: pathlib.Path = SRC) -> list[str]:
  """`file:line: module` for each import of a private part of fedjit.core.

  Every module under fedjit.core is private (as in .importlinter); from
  `fedjit.core` itself, the names that are modules (`_values`, `backends`,
  `compiler`) are private too.
  """
  def under_core(module: str) -> bool:
    return module.startswith("fedjit.core.")

  def private_name(name: str) -> bool:
    return name.startswith("_") or name in ("backends", "compiler")

  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      modules = [a.name for a in node.names if under_core(a.name)]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if under_core(node.module):
        modules = [node.module]
      elif node.module == "fedjit.core":  # `from fedjit.core import _values`
        modules = [f"fedjit.core.{a.name}" for a in node.names if private_name(a.name)]
      else:
        continue
    else:
      continue
    found += [(node.lineno, f"{path.relative_to(root)}:{node.lineno}: {m}") for m in modules]
  return [f for _, f in sorted(found)]


def _upper_files() -> list[pathlib.Path]:
  return sorted(f for p in UPPER for f in ([p] if p.is_file() else p.rglob("*.py")))


def test_the_check_finds_private_imports(tmp_path):
  probe = tmp_path / "probe.py"
  probe.write_text("import fedjit.core._types\n"
                   "from fedjit.core import _values, to_type\n"
                   "def f():\n"
                   "  from fedjit.core.backends.vectorized import cohorts\n"
                   "  from fedjit.core.compiler import fusion\n"
                   "from fedjit.core import TensorType\n")
  found = _private_core_imports(probe, root=tmp_path)
  assert [f.split(": ")[1] for f in found] == [
      "fedjit.core._types", "fedjit.core._values", "fedjit.core.backends.vectorized",
      "fedjit.core.compiler"]
  assert found[0] == "probe.py:1: fedjit.core._types"


def test_learning_simulation_and_cli_use_only_the_public_core_api():
  files = _upper_files()
  assert len(files) > 10 and SRC / "cli.py" in files
  found = [f for path in files for f in _private_core_imports(path)]
  assert not found, ("The upper layers must import fedjit.core's public names only "
                     "(export a seam in fedjit/core/__init__.py): " + "; ".join(found))


# Backend.prepare and prepare_population: what simulation uses to hand a
# round's client data to the backend ahead of the call.

def _sum_of_features():
  seq = fedjit.SequenceType(BATCH)

  @fedjit.federated_computation(fedjit.FederatedType(seq, fedjit.CLIENTS))
  def total(data):
    return fedjit.federated_sum(fedjit.federated_map(
        lambda ds: ds.reduce(np.float32(0), lambda a, b, m: a + (b[0].sum(axis=1) * m).sum(),
                             with_mask=True), data))
  return seq, total


def _expected_total(datasets):
  return sum(float(x.astype(np.float64).sum()) for d in datasets for x, _ in d)


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
def test_prepared_client_data_gives_the_same_result(backend):
  seq, total = _sum_of_features()
  datasets = [_batches([3, 1], seed=1), _batches([2], seed=2), _batches([2, 2, 1], seed=3)]
  with fedjit.backend(backend) as b:
    prepared = b.prepare(fedjit.FederatedType(seq, fedjit.CLIENTS), datasets, "client data")
    with prepared:
      got = total(prepared.value)
  np.testing.assert_allclose(got, _expected_total(datasets), rtol=1e-5)
  prepared.release()  # idempotent


def test_the_default_prepare_converts_nothing():
  value = [1.0, 2.0]
  assert fedjit.Backend().prepare(fedjit.FederatedType(np.float32, fedjit.CLIENTS),
                                  value).value is value


def test_prepare_names_a_bad_client_by_its_id():
  seq, _ = _sum_of_features()
  bad = [(np.zeros((2, 3), np.float32), np.zeros(2, np.int32))]  # 3 features, not 2
  with pytest.raises(fedjit.FederatedTypeError, match="client data, client 'hospital-7'"):
    fedjit.VectorizedBackend().prepare(fedjit.FederatedType(seq, fedjit.CLIENTS),
                                       [_batches([2]), bad], "client data",
                                       client_ids=["hospital-3", "hospital-7"])


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
def test_prepare_population_gathers_cohorts(backend):
  seq, total = _sum_of_features()
  datasets = [_batches([n], seed=n) for n in (1, 4, 2, 7, 3)]
  population = core.prepare_population(seq, datasets, client_ids=list("abcde"))
  with fedjit.backend(backend):
    got = total(population.gather([3, 0, 3]))
  np.testing.assert_allclose(got, _expected_total([datasets[3], datasets[0], datasets[3]]),
                             rtol=1e-5)


def test_prepare_population_errors():
  seq, _ = _sum_of_features()
  bad = [(np.zeros((2, 3), np.float32), np.zeros(2, np.int32))]
  with pytest.raises(fedjit.FederatedTypeError, match="client 'b'"):
    core.prepare_population(seq, [_batches([2]), bad], client_ids=["a", "b"])
  with pytest.raises(ValueError, match="2 datasets but 1 client ids"):
    core.prepare_population(seq, [_batches([2]), _batches([1])], client_ids=["a"])
  with pytest.raises(TypeError, match="expected a SequenceType"):
    core.prepare_population(BATCH[0], [np.zeros((1, 2), np.float32)])


@pytest.mark.parametrize("cache_clients", [True, False])
def test_run_training_names_a_bad_client_by_its_id(tmp_path, cache_clients):
  from conftest import batched_clients, softmax3_model
  from fedjit import learning, simulation
  datasets = {f"site-{i}": d for i, d in enumerate(batched_clients([4, 2, 6, 4]))}
  datasets["site-2"] = [(np.zeros((2, 5), np.float32), np.zeros(2, np.int32))]  # 5 features
  data = simulation.ClientData.from_clients_and_fn(
      list(datasets), lambda cid: datasets[cid])
  trainer = learning.algorithms.build_weighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.1))
  with pytest.raises(fedjit.FederatedTypeError, match="client 'site-2'"):
    simulation.run_training(trainer, data, rounds=2, clients_per_round=4,
                            output_dir=tmp_path, cache_clients=cache_clients)
