"""Large cohorts passed as lists stream through a round in chunks of clients."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import batched_clients as _clients
from conftest import softmax3_model as _model

import fedjit
from fedjit import CLIENTS, FederatedType, SequenceType, TensorType, learning
from fedjit.core.backends.vectorized import conversions, streaming as _streaming

TINY = 1e-6  # MB: chunks as small as allowed (MIN_CHUNK clients)
X = TensorType(np.float32, [None, 3])


def _chunks(n):
  """Chunk sizes with the tiny-MB setting: equal chunks of at most 16
  (MIN_CHUNK) clients."""
  count = math.ceil(n / 16)
  return [math.ceil(n / count)] * count


@pytest.fixture
def padded(monkeypatch):
  """The number of clients of every cohort or chunk padded."""
  sizes = []
  whole, chunk = conversions.pad_clients, _streaming.pad_chunk

  def cohort_spy(element_type, clients, *args):
    sizes.append(len(clients))
    return whole(element_type, clients, *args)

  def chunk_spy(element_type, clients, *args):
    sizes.append(len(clients))
    return chunk(element_type, clients, *args)
  monkeypatch.setattr(conversions, "pad_clients", cohort_spy)
  monkeypatch.setattr(_streaming, "pad_chunk", chunk_spy)
  return sizes


EQUAL = [6] * 200
POWER_LAW = [1, 1, 2, 3, 5, 8, 13, 40, 1, 2] * 20


@pytest.mark.parametrize("sizes", [EQUAL, POWER_LAW], ids=["equal", "power_law"])
@pytest.mark.parametrize("options", [dict(client_map="map"), dict(client_map="map", chunk_size=3),
                                     dict(client_map="vmap")], ids=["map", "chunk3", "vmap"])
def test_streamed_fed_avg_equals_reference(sizes, options, padded):
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  data = _clients(sizes)
  with fedjit.backend("reference"):
    ref = trainer.next(trainer.initialize(), data)
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=TINY, **options)):
    got = trainer.next(trainer.initialize(), data)
  # 200 clients: 13 chunks of 16 (ceil(200 / 16) = 13), not one cohort of 200.
  assert padded == _chunks(200) == [16] * 13
  for k in ("w", "b"):
    np.testing.assert_allclose(got.state.global_model_weights.trainable[k],
                               ref.state.global_model_weights.trainable[k], atol=1e-5)
  assert got.metrics["client_work"]["train"]["num_examples"] == sum(sizes)
  np.testing.assert_allclose(got.metrics["client_work"]["train"]["loss"],
                             ref.metrics["client_work"]["train"]["loss"], rtol=1e-5)


def test_streaming_is_the_default_for_large_cohorts_only(padded):
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  state = trainer.initialize()
  data = _clients(EQUAL)
  trainer.next(state, data)  # 200 tiny clients: far below 4 MB, one cohort
  assert padded == [200]
  del padded[:]
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=TINY)):
    trainer.next(state, data[:31])  # fewer than two chunks of 16 clients
  assert padded == [31]
  del padded[:]
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=None)):
    trainer.next(state, data)
  assert padded == [200]
  del padded[:]
  # 40 clients of 7,000 examples (16 bytes each): 4.5 MB, over the 4 MB from
  # which cohorts stream by default, in three chunks of ceil(40 / 3) = 14.
  rng = np.random.default_rng(7)
  big = []
  for _ in range(40):
    x = rng.normal(size=(7000, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    big.append([(x[i:i + 500], y[i:i + 500]) for i in range(0, 7000, 500)])
  got = trainer.next(state, big)
  assert padded == [14] * 3
  with fedjit.backend("reference"):
    ref = trainer.next(state, big)
  np.testing.assert_allclose(got.state.global_model_weights.trainable["w"],
                             ref.state.global_model_weights.trainable["w"], atol=1e-5)


def test_filler_clients_of_the_last_chunk_are_left_out(padded):
  # 130 clients: nine chunks of ceil(130 / 9) = 15, the first with 10 real
  # clients and 5 copies of its shortest client that must not count.
  @fedjit.jax_computation(SequenceType(X))
  def stats(data):
    total = data.reduce(jnp.float32(0.0), lambda t, x: t + jnp.sum(x))
    return {"total": total, "one": jnp.int32(1)}

  @fedjit.federated_computation(FederatedType(SequenceType(X), CLIENTS))
  def summarize(data):
    out = fedjit.federated_map(stats, data)
    return (fedjit.federated_sum(out["one"]), fedjit.federated_mean(out["total"]),
            fedjit.federated_sum(out["total"]))

  rng = np.random.default_rng(1)
  data = [[rng.normal(size=(2, 3)).astype(np.float32) for _ in range(1 + i % 4)]
          for i in range(130)]
  totals = np.array([sum(float(x.sum()) for x in c) for c in data])
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=TINY)):
    count, mean, total = summarize(data)
  assert padded == _chunks(130) == [15] * 9
  assert int(count) == 130
  np.testing.assert_allclose(mean, totals.mean(), rtol=1e-5)
  np.testing.assert_allclose(total, totals.sum(), rtol=1e-5)


def test_two_aggregation_stages_stream_the_data_twice(padded):
  # The variance about the mean needs the mean first: two map-reduces over
  # the same client data, the second using the first's result.
  @fedjit.jax_computation(SequenceType(X))
  def client_sum(data):
    return data.reduce(jnp.float32(0.0), lambda t, x: t + jnp.sum(x[:, 0]))

  @fedjit.jax_computation(SequenceType(X), np.float32)
  def squared_deviation(data, mean):
    total = data.reduce(jnp.float32(0.0), lambda t, x: t + jnp.sum(x[:, 0]))
    return (total - mean) ** 2

  @fedjit.federated_computation(FederatedType(SequenceType(X), CLIENTS))
  def variance(data):
    mean = fedjit.federated_mean(fedjit.federated_map(client_sum, data))
    deviations = fedjit.federated_map(
        squared_deviation, (data, fedjit.federated_broadcast(mean)))
    return mean, fedjit.federated_mean(deviations)

  rng = np.random.default_rng(2)
  data = [[rng.normal(size=(2, 3)).astype(np.float32) for _ in range(3)] for _ in range(150)]
  sums = np.array([sum(float(x[:, 0].sum()) for x in c) for c in data])
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=TINY)):
    mean, var = variance(data)
  assert padded == _chunks(150) * 2 == [15] * 20  # ten chunks, twice
  np.testing.assert_allclose(mean, sums.mean(), rtol=1e-5)
  np.testing.assert_allclose(var, sums.var(), rtol=1e-4)


def test_computations_that_need_client_values_are_not_streamed(padded):
  @fedjit.jax_computation(SequenceType(X))
  def client_sum(data):
    return data.reduce(jnp.float32(0.0), lambda t, x: t + jnp.sum(x))

  @fedjit.federated_computation(FederatedType(SequenceType(X), CLIENTS))
  def sums(data):
    return fedjit.federated_map(client_sum, data)  # one value per client

  data = [[np.full((2, 3), i, np.float32)] for i in range(130)]
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=TINY)):
    got = sums(data)
  assert padded == [130]
  np.testing.assert_allclose(got, [6.0 * i for i in range(130)])


def test_a_bad_client_in_a_late_chunk_is_named_and_loses_nothing(padded):
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  state = trainer.initialize()
  data = _clients(EQUAL)
  bad = list(data)
  bad[187] = [(np.zeros((2, 4), np.float32), np.zeros(2, np.int32))]  # 4 features, not 3
  backend = fedjit.VectorizedBackend(stream_chunk_mb=TINY)
  with fedjit.backend(backend):
    with pytest.raises(fedjit.FederatedTypeError, match="client 187"):
      trainer.next(state, bad)
    # The chunks already sent were finished and their buffers returned: the
    # next round is right.
    got = trainer.next(state, data)
  with fedjit.backend("reference"):
    ref = trainer.next(state, data)
  np.testing.assert_allclose(got.state.global_model_weights.trainable["w"],
                             ref.state.global_model_weights.trainable["w"], atol=1e-5)


def test_streamed_evaluation_equals_reference():
  evaluator = learning.algorithms.build_fed_eval(_model())
  rng = np.random.default_rng(3)
  weights = {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": np.zeros(2, np.float32)}
  state = evaluator.set_model_weights(
      evaluator.initialize(), learning.models.ModelWeights(weights, ()))
  data = _clients(POWER_LAW, seed=4)
  with fedjit.backend("reference"):
    ref = evaluator.next(state, data).metrics["client_work"]["eval"]["current_round_metrics"]
  with fedjit.backend(fedjit.VectorizedBackend(stream_chunk_mb=TINY)):
    got = evaluator.next(state, data).metrics["client_work"]["eval"]["current_round_metrics"]
  assert got["num_examples"] == ref["num_examples"] == sum(POWER_LAW)
  np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-5)


def test_streamed_rounds_compile_once_per_chunk_shape():
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  state = trainer.initialize()
  backend = fedjit.VectorizedBackend(stream_chunk_mb=TINY)
  rng = np.random.default_rng(5)
  with fedjit.backend(backend):
    for _ in range(4):  # different clients of equal size every round
      state = trainer.next(state, _clients([6] * 200, seed=int(rng.integers(1 << 30)))).state
  # Traced (and compiled) twice: the chunk program and the final program.
  assert backend.compilations(trainer.next) == 2


def test_bad_stream_chunk_mb_is_refused():
  for bad in (0, -1.0, "64", True):
    with pytest.raises(ValueError, match="stream_chunk_mb must be a positive number or None"):
      fedjit.VectorizedBackend(stream_chunk_mb=bad)


def test_power_law_rounds_compile_a_few_chunk_programs():
  # Chunks hold clients of similar length (longest first), padded to a power
  # of two: at most one chunk program per power of two up to the longest
  # client (here <= 2 * 30 examples / 2 per batch = 30 batches: 1..32, six),
  # however many random rounds run.
  trainer = learning.algorithms.build_weighted_fed_avg(_model(), learning.optimizers.build_sgdm(0.3))
  state = trainer.initialize()
  rng = np.random.default_rng(6)
  backend = fedjit.VectorizedBackend(stream_chunk_mb=TINY)
  with fedjit.backend(backend):
    for r in range(6):
      sizes = np.clip(rng.lognormal(1.5, 1.0, 200).astype(int), 1, 60)
      state = trainer.next(state, _clients(sizes, seed=r)).state
  # One final program and at most six chunk programs.
  assert 2 <= backend.compilations(trainer.next) <= 1 + 6
