"""Stochastic quantization with a random Hadamard rotation: unbiased, bounded
error, and the bits it saves."""

import numpy as np
import pytest

from conftest import batched_clients, softmax3_model

import fedjit
from fedjit import learning
from fedjit.learning.aggregators._compression import (StochasticQuantizationFactory,
                                                      compression_aggregator, hadamard)

V = fedjit.StructType([("w", fedjit.TensorType(np.float32, [5, 3])),
                       ("b", fedjit.TensorType(np.float32, [3]))])


def _sylvester(n):
  h = np.ones((1, 1))
  while h.shape[0] < n:
    h = np.block([[h, h], [h, -h]])
  return h / np.sqrt(n)


def test_hadamard_is_the_orthonormal_sylvester_matrix():
  x = np.random.default_rng(0).normal(size=16).astype(np.float32)
  np.testing.assert_allclose(hadamard(x), _sylvester(16) @ x, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hadamard(hadamard(x)), x, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="power of two"):
    hadamard(np.zeros(6, np.float32))


def _clients(n=8, seed=0):
  rng = np.random.default_rng(seed)
  return [{"w": rng.normal(size=(5, 3)).astype(np.float32),
           "b": rng.normal(size=3).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize("backend, rotation", [("vectorized", True), ("vectorized", False),
                                               ("reference", True)])
def test_each_round_is_close_and_the_average_of_rounds_is_unbiased(backend, rotation):
  values = _clients()
  exact = {k: np.sum([v[k].astype(np.float64) for v in values], axis=0) for k in ("w", "b")}
  process = StochasticQuantizationFactory(bits=4, rotation=rotation, noise_seed=1).create(V)
  state = process.initialize()
  rounds, total = 200, {k: 0.0 for k in exact}
  with fedjit.backend(backend):
    for r in range(rounds if backend == "vectorized" else 20):
      out = process.next(state, values)
      state = out.state
      # One round: each coordinate of each client is off by less than one step
      # (range / 15); rotation is orthonormal, so the error's norm is bounded too.
      for k in exact:
        total[k] = total[k] + np.asarray(out.result[k], np.float64)
      if r == 0:
        spread = max(np.ptp(np.concatenate([v["w"].ravel(), v["b"]])) for v in values)
        bound = len(values) * np.sqrt(32) * 2 * spread / 15
        err = np.sqrt(sum(np.sum((np.asarray(out.result[k]) - exact[k]) ** 2) for k in exact))
        assert err < bound
  if backend == "vectorized":  # unbiased: the mean over rounds approaches the sum
    for k in exact:
      np.testing.assert_allclose(total[k] / rounds, exact[k], atol=0.15)
  bits = out.measurements
  padded = 32 if rotation else 18
  assert int(bits["bits_per_client"]) == padded * 4 + 64
  assert int(bits["uncompressed_bits_per_client"]) == 18 * 32


def test_fed_avg_with_compression_stays_near_plain_fed_avg():
  model = softmax3_model()
  data = batched_clients([4, 6, 4, 8, 2, 6], seed=3)
  plain = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.5))
  compressed = learning.algorithms.build_weighted_fed_avg(
      model, learning.optimizers.build_sgdm(0.5),
      model_aggregator=compression_aggregator(bits=8, noise_seed=0))
  a = plain.next(plain.initialize(), data).state.global_model_weights.trainable
  b = compressed.next(compressed.initialize(), data).state.global_model_weights.trainable
  for k in ("w", "b"):
    np.testing.assert_allclose(b[k], a[k], atol=0.02)


def test_errors():
  with pytest.raises(ValueError, match=r"bits to be an int in \[1, 16\]"):
    StochasticQuantizationFactory(bits=0)
  with pytest.raises(ValueError, match="bits"):
    StochasticQuantizationFactory(bits=8.5)
  with pytest.raises(TypeError, match="rotation"):
    StochasticQuantizationFactory(rotation="yes")
  with pytest.raises(TypeError, match="floating"):
    StochasticQuantizationFactory().create(fedjit.TensorType(np.int32, [3]))
  with pytest.raises(TypeError, match="weighted"):
    compression_aggregator(weighted="no")
