"""Clients of very different sizes are padded in size buckets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import batched_clients as _clients
from conftest import softmax3_model as _model

import fedjit
from fedjit import learning
from fedjit.core import _padding
from fedjit.core.backends.vectorized import cohorts, layouts


def test_power_law_cohort_is_bucketed_with_small_padding():
  sizes = [1, 1, 2, 3, 5, 8, 13, 40, 1, 2] * 10
  padded = layouts.pad_clients(
      fedjit.TensorType(np.float32, [None, 3]),
      [[np.zeros((2, 3), np.float32)] * ((n + 1) // 2) for n in sizes])
  assert len(padded.buckets) > 1
  batches = sum(b.source.mask.shape[0] * b.source.mask.shape[1] for b in padded.buckets)
  real = sum((n + 1) // 2 for n in sizes)
  assert batches < 2 * real  # one padded array would hold 100 * 32 = 3200 batches
  positions = sorted(int(i) for b in padded.buckets
                     for i, v in zip(b.positions, b.valid) if v)
  assert positions == list(range(len(sizes)))


@pytest.mark.parametrize("options", [dict(client_map="map"), dict(client_map="map", chunk_size=2),
                                     dict(client_map="vmap")])
def test_bucketed_fed_avg_equals_reference(options):
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  data = _clients([1, 1, 2, 3, 5, 8, 13, 40, 1, 2] * 7)
  assert len(layouts.pad_clients(trainer.next.type_signature.parameter[1].member.element,
                                 data).buckets) > 1
  with fedjit.backend("reference"):
    ref = trainer.next(trainer.initialize(), data)
  with fedjit.backend("vectorized", **options):
    got = trainer.next(trainer.initialize(), data)
  for k in ("w", "b"):
    np.testing.assert_allclose(got.state.global_model_weights.trainable[k],
                               ref.state.global_model_weights.trainable[k], atol=1e-5)
  assert got.metrics["client_work"]["train"]["num_examples"] == 76 * 7


def test_bucketed_client_values_come_back_in_cohort_order():
  seq = fedjit.SequenceType(fedjit.TensorType(np.float32, [None, 3]))

  @fedjit.federated_computation(fedjit.FederatedType(seq, fedjit.CLIENTS))
  def per_client_sums(data):
    return fedjit.federated_map(
        lambda ds: ds.reduce(jnp.float32(0), lambda a, b, m: a + jnp.sum(b * m[:, None]),
                             with_mask=True), data)

  sizes = [1, 30, 2, 9, 1] * 14
  rng = np.random.default_rng(1)
  data = [[rng.normal(size=(2, 3)).astype(np.float32) for _ in range(n)] for n in sizes]
  expected = [sum(float(b.sum()) for b in c) for c in data]
  assert len(layouts.pad_clients(seq.element, data).buckets) > 1
  for options in (dict(client_map="map"), dict(client_map="vmap")):
    with fedjit.backend("vectorized", **options):
      np.testing.assert_allclose(per_client_sums(data), expected, rtol=1e-5)


def test_random_cohorts_compile_a_handful_of_times():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.1))
  rng = np.random.default_rng(0)
  population = _clients(np.minimum(rng.zipf(1.8, 200), 60), seed=2)
  state = trainer.initialize()
  fn = fedjit.get_backend().compiled(trainer.next)
  with fedjit.backend("vectorized"):
    for r in range(30):
      cohort = [population[i] for i in rng.choice(200, 8, replace=False)]
      state = trainer.next(state, cohort).state
  compiled = fedjit.VectorizedBackend().compiled(trainer.next)
  assert compiled is fn
  compilations = fedjit.get_backend().compilations(trainer.next)
  assert 1 <= compilations <= 12, compilations


def test_population_gather_equals_passing_the_datasets():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  population_data = _clients([1, 4, 2, 3, 5, 8, 13, 40, 1, 2, 6, 6], seed=3)
  member = trainer.next.type_signature.parameter[1].member
  population = cohorts.Population(member, population_data)
  cohort = [7, 0, 5, 5 - 4, 11, 3]
  with fedjit.backend("reference"):
    ref = trainer.next(trainer.initialize(), [population_data[i] for i in cohort])
  for options in (dict(client_map="map"), dict(client_map="vmap")):
    with fedjit.backend("vectorized", **options):
      got = trainer.next(trainer.initialize(), population.gather(cohort))
    for k in ("w", "b"):
      np.testing.assert_allclose(got.state.global_model_weights.trainable[k],
                                 ref.state.global_model_weights.trainable[k], atol=1e-5)
    assert got.metrics["client_work"]["train"]["num_examples"] == \
        ref.metrics["client_work"]["train"]["num_examples"]


def _power_law_population(n=400, seed=4):
  rng = np.random.default_rng(seed)
  return _clients(np.minimum(rng.zipf(1.6, n), 80), seed=seed)


def test_random_cohorts_passed_as_lists_reuse_a_few_layouts():
  # Cohorts of >= 64 clients are bucketed; their layouts are sticky, so 100
  # rounds of random cohorts compile only a handful of times.
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.1))
  population = _power_law_population()
  rng = np.random.default_rng(5)
  state = trainer.initialize()
  backend = fedjit.VectorizedBackend(stream_chunk_mb=None)  # bucketed, not streamed
  backend.reset()  # no layouts remembered from other tests
  with fedjit.backend(backend):
    for _ in range(100):
      cohort = [population[i] for i in rng.choice(len(population), 100, replace=False)]
      state = trainer.next(state, cohort).state
  assert 1 <= backend.compilations(trainer.next) <= 5, backend.compilations(trainer.next)


def test_reused_layout_with_spare_slots_equals_reference():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  element = trainer.next.type_signature.parameter[1].member.element
  big = _clients([1, 1, 2, 3, 5, 8, 13, 40, 1, 2] * 7, seed=6)
  small = _clients([1, 2, 2, 3, 4, 6, 9, 20, 1, 1] * 7, seed=7)
  policy = layouts.ShapePolicy()
  first = layouts.pad_clients(element, big, policy)
  second = layouts.pad_clients(element, small, policy)
  assert len(second.buckets) > 1
  # The same shapes as the first cohort's (no new compilation), with spare slots.
  shapes = lambda p: [np.shape(l) for l in jax.tree_util.tree_leaves(p)]
  assert shapes(second) == shapes(first)
  assert sum(float(b.valid.sum()) for b in second.buckets) < sum(len(b.valid) for b in second.buckets)
  positions = sorted(int(i) for pos, ok in ((b.positions, b.valid) for b in second.buckets)
                     for i, v in zip(pos, ok) if v)
  assert positions == list(range(len(small)))
  with fedjit.backend("reference"):
    ref = trainer.next(trainer.initialize(), small)
  for options in (dict(client_map="map"), dict(client_map="vmap")):
    with fedjit.backend("vectorized", **options) as backend:
      # The backend remembers the first cohort's layout, and pads the
      # second into it (as `second` above).
      backend.reset()
      layouts.pad_clients(element, big, backend.shape_policy)
      got = trainer.next(trainer.initialize(), small)
      assert backend.shape_policy.layouts_remembered() == {(element, len(small)): 1}
    for k in ("w", "b"):
      np.testing.assert_allclose(got.state.global_model_weights.trainable[k],
                                 ref.state.global_model_weights.trainable[k], atol=1e-5)
    assert got.metrics["client_work"]["train"]["num_examples"] == \
        ref.metrics["client_work"]["train"]["num_examples"]


def test_layout_assignment_finds_a_fit_whenever_one_exists():
  layout = layouts._Layout([1, 4, 16], [2, 2, 1])
  assert layout.assign([16, 1, 4, 3, 1]) == [[1, 4], [3, 2], [0]]
  assert layout.assign([1, 1, 1, 1, 1]) is not None  # short clients use long buckets
  assert layout.assign([2, 2, 2, 2]) is None  # only 3 slots of length >= 2
  assert layout.assign([17]) is None
  rng = np.random.default_rng(0)
  for _ in range(200):
    lengths = list(rng.integers(1, 20, rng.integers(1, 12)))
    got = layout.assign(lengths)
    # Hall's condition for nested choices: enough slots beyond every length.
    fits = all(sum(n > t for n in lengths) <= layout.slots_above(t) for t in (0, 1, 4, 16))
    assert (got is not None) == fits
    if got is not None:
      assert sorted(i for b in got for i in b) == list(range(len(lengths)))
      for n, count, members in zip(layout.lengths, layout.counts, got):
        assert len(members) <= count and all(lengths[i] <= n for i in members)


def test_layout_memory_is_bounded():
  # At most 32 (element type, cohort size) pairs, and 3 layouts each.
  policy = layouts.ShapePolicy()
  element = fedjit.TensorType(np.float32, [None, 3])
  batch = np.zeros((2, 3), np.float32)
  for cohort in range(64, 64 + 2 * 32):
    layouts.pad_clients(element, [[batch] * (1 + i % 5) for i in range(cohort)], policy)
  remembered = policy.layouts_remembered()
  assert len(remembered) == 32
  assert all(n <= 3 for n in remembered.values())
  policy.clear()
  assert policy.layouts_remembered() == {}


def test_reset_forgets_compiled_programs_and_layouts():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  data = _clients([1, 1, 2, 3, 5, 8, 13, 40, 1, 2] * 7)  # 70 clients: bucketed
  with fedjit.backend("vectorized", client_map="map", stream_chunk_mb=None) as backend:
    backend.reset()
    state = trainer.next(trainer.initialize(), data).state
    trainer.next(state, data)
    assert backend.compilations(trainer.next) == 1
    assert len(backend.shape_policy.layouts_remembered()) == 1
  # Another backend object of the same configuration shares them.
  again = fedjit.VectorizedBackend(client_map="map")
  assert again.compilations(trainer.next) == 1
  again.reset()
  assert backend.compilations(trainer.next) == 0
  assert backend.shape_policy.layouts_remembered() == {}
  with fedjit.backend(again):
    trainer.next(state, data)
  assert again.compilations(trainer.next) == 1


def test_one_huge_client_does_not_change_later_layouts():
  policy = layouts.ShapePolicy()
  element = fedjit.TensorType(np.float32, [None, 3])
  batch = np.zeros((2, 3), np.float32)
  cohort = lambda lengths: [[batch] * n for n in lengths]
  usual = [1, 1, 2, 3, 4, 6, 9, 1, 2, 2] * 10
  first = layouts.pad_clients(element, cohort(usual), policy)
  huge = layouts.pad_clients(element, cohort([500] + usual[1:]), policy)
  assert max(b.source.mask.shape[1] for b in huge.buckets) >= 500
  after = layouts.pad_clients(element, cohort(usual[::-1]), policy)
  assert [b.source.mask.shape for b in after.buckets] == [b.source.mask.shape for b in first.buckets]


def test_row_view_of_a_padded_cohort_reads_the_same_elements():
  # A client's row view (what the client loop sees) reduces and maps exactly
  # like that client's own padded sequence, checked against plain NumPy.
  from fedjit.core._sequence import PaddedSequence
  element = fedjit.TensorType(np.float32, [None, 3])
  rng = np.random.default_rng(5)
  clients = [[rng.random((2, 3), dtype=np.float32), rng.random((1, 3), dtype=np.float32)],
             [rng.random((2, 3), dtype=np.float32)]]
  cohort = _padding.pad_sequences(element, clients)

  @jax.jit
  def both(data, mask, row):
    seq = PaddedSequence(data, mask, element, row=row)
    weighted = seq.reduce(jnp.float32(0), lambda acc, b: acc * 0.5 + jnp.sum(b))
    doubled = seq.map(lambda b: 2.0 * b).reduce(jnp.float32(0),
                                                lambda acc, b, m: acc + jnp.sum(b * m[:, None]),
                                                with_mask=True)
    return weighted, doubled

  for row, batches in enumerate(clients):
    expected = 0.0
    for b in batches:
      expected = expected * 0.5 + float(np.sum(b, dtype=np.float64))
    weighted, doubled = both(cohort.data, cohort.mask, row)
    np.testing.assert_allclose(weighted, expected, rtol=1e-5)
    np.testing.assert_allclose(doubled, 2.0 * sum(float(b.sum()) for b in batches), rtol=1e-5)


@pytest.mark.parametrize("options", [dict(client_map="map"), dict(client_map="map", chunk_size=2),
                                     dict(client_map="vmap")])
def test_population_cohort_zipped_with_per_client_values(options):
  # A Population's cohort (rows of the padded population) zipped with a
  # plain per-client value: each client sees its own dataset and its own value.
  seq = fedjit.SequenceType(fedjit.TensorType(np.float32, [None, 2]))

  @fedjit.federated_computation(fedjit.FederatedType(seq, fedjit.CLIENTS),
                                fedjit.FederatedType(np.float32, fedjit.CLIENTS))
  def scaled_sums(data, weights):
    return fedjit.federated_map(
        lambda a: a[0].reduce(jnp.float32(0), lambda c, b, m: c + jnp.sum(b * m[:, None]),
                              with_mask=True) * a[1],
        fedjit.federated_zip((data, weights)))

  rng = np.random.default_rng(0)
  data = [[rng.normal(size=(2, 2)).astype(np.float32) for _ in range(k)] for k in (1, 3, 2, 5, 1)]
  population = fedjit.core.prepare_population(seq, data)
  ids, weights = [3, 0, 4], [2.0, -1.0, 0.5]
  expected = [sum(float(b.sum()) for b in data[i]) * w for i, w in zip(ids, weights)]
  with fedjit.backend("vectorized", **options):
    np.testing.assert_allclose(scaled_sums(population.gather(ids), weights), expected, rtol=1e-5)
