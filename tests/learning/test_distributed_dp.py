"""Distributed DP (TFF's DistributedDpSumFactory, Skellam): quantization error,
modular wrap, the noise's variance, per-client keys, accounting, the report."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import softmax3_model

import fedjit
from fedjit import learning
from fedjit.learning.aggregators import (DistributedDpSumFactory, PrivacyAccountant,
                                         UnweightedMeanFactory)
from fedjit.learning.aggregators._distributed_dp import from_field, skellam_noise, to_field


def _values(n, d, seed=0):
  rng = np.random.default_rng(seed)
  # Half the clients above the clip (norm ~ 3), half below (~ 0.3).
  return [(rng.normal(size=d) * (3.0 if i % 2 else 0.3) / math.sqrt(d)).astype(np.float32)
          for i in range(n)]


def _clipped_sum(values, clip):
  return np.sum([v.astype(np.float64) * clip / max(np.linalg.norm(v.astype(np.float64)), clip)
                 for v in values], axis=0)


@pytest.mark.parametrize("backend,rotation", [("vectorized", "hd"), ("reference", "dft")])
def test_without_noise_the_sum_is_the_clipped_sum_within_the_rounding_bound(backend, rotation):
  n, d, clip = 6, 50, 1.0
  values = _values(n, d)
  process = DistributedDpSumFactory(0.0, n, 20, clip, rotation_type=rotation,
                                    noise_seed=0).create(fedjit.TensorType(np.float32, [d]))
  with fedjit.backend(backend):
    out = process.next(process.initialize(), values)
  m = out.measurements
  s, padded = float(m["scale_factor"]), int(m["padded_dim"])
  assert padded == (64 if rotation == "hd" else 50) and int(m["actual_num_clients"]) == n
  # Each client's rounding moves each of its `padded` scaled coordinates by
  # less than 1, so by less than √padded in ℓ2; the sum of n clients by less
  # than n·√padded, which unscaling (÷ s), the inverse rotation (an
  # isometry) and dropping the padding can only shrink. Plus float32 slack.
  bound = n * math.sqrt(padded) / s + 1e-5
  error = np.linalg.norm(np.asarray(out.result, np.float64) - _clipped_sum(values, clip))
  assert error <= bound
  assert out.result.dtype == np.float32 and out.result.shape == (d,)


def test_structures_keep_their_shapes_and_dtypes():
  t = fedjit.StructType([("w", fedjit.TensorType(np.float32, [2, 3])),
                         ("b", fedjit.TensorType(np.float32, [3]))])
  process = DistributedDpSumFactory(0.0, 2, 20, 10.0, noise_seed=0).create(t)
  value = {"w": np.ones((2, 3), np.float32), "b": np.full(3, -0.5, np.float32)}
  out = process.next(process.initialize(), [value, value])
  np.testing.assert_allclose(out.result["w"], 2 * value["w"], atol=1e-3)
  np.testing.assert_allclose(out.result["b"], 2 * value["b"], atol=1e-3)


def test_the_modular_wrap_is_exact_for_sums_in_range():
  bits = 8  # signed range [-128, 128)
  clients = np.array([[120, -100, 127, -128], [120, -100, -127, 0], [-200, 150, 1, 100]],
                     np.int32)
  total = clients.sum(axis=0)               # [40, -50, 1, -28]: in range,
  assert np.all(np.abs(clients[:2].sum(axis=0)[:2]) > 127)   # partial sums are not

  @fedjit.federated_computation(fedjit.FederatedType(fedjit.TensorType(np.int32, [4]),
                                                     fedjit.CLIENTS))
  def modular_sum(values):
    return fedjit.federated_secure_modular_sum(values, 2 ** bits)

  sent = [np.asarray(to_field(jnp.asarray(c), bits)) for c in clients]
  assert all(np.all((0 <= x) & (x < 2 ** bits)) for x in sent)
  np.testing.assert_array_equal(np.asarray(from_field(jnp.asarray(modular_sum(sent)), bits)),
                                total)
  # Out of range, the sum wraps around (what modclip_prob bounds).
  np.testing.assert_array_equal(np.asarray(from_field(jnp.array([130, -129]), bits)),
                                [-126, 127])


def test_skellam_noise_is_integer_symmetric_with_the_stated_variance():
  # One Poisson draw per side; a sum of 10 (the rate 3e5 is above 2**15).
  for variance, size in ((3.0, 200_000), (6.0e5, 50_000)):
    noise = np.asarray(skellam_noise(jax.random.PRNGKey(1), variance, (size,)), np.float64)
    # The sample variance's relative stddev is about √(2/size) (+ the
    # kurtosis term 1/(variance·size)): 0.003 and 0.006.
    assert abs(noise.var() / variance - 1) < 5 * math.sqrt(2 / size + 1 / (variance * size))
    assert abs(noise.mean()) < 5 * math.sqrt(variance / size)
  size = 200_000
  small = np.asarray(skellam_noise(jax.random.PRNGKey(2), 3.0, (size,)))
  assert small.dtype == np.int32
  counts = np.bincount(small - small.min())
  centre = -small.min()
  assert abs(counts[centre + 1] - counts[centre - 1]) < 5 * math.sqrt(counts[centre + 1])


def test_the_noise_of_the_sum_has_n_times_the_local_variance(backend="vectorized"):
  # (The reference backend runs the same client computation, one client at a
  # time: the noiseless test covers it; this one would take 10 s there.)
  # Different clients draw independent noise: the sum's noise has variance
  # n·(s·σ_local)² in the scaled domain (n² times it if all drew the same).
  n, d, clip = 4, 4096, 1.0
  values = _values(n, d, seed=1)
  process = DistributedDpSumFactory(1.0, n, 12, clip, rotation_type="hd",
                                    noise_seed=5).create(fedjit.TensorType(np.float32, [d]))
  with fedjit.backend(backend):
    out = process.next(process.initialize(), values)
  m = out.measurements
  s, local = float(m["scale_factor"]), float(m["scaled_local_stddev"])
  np.testing.assert_allclose(local / s, 1.0 * clip / math.sqrt(n), rtol=1e-5)
  noise = (np.asarray(out.result, np.float64) - _clipped_sum(values, clip)) * s
  expected = n * local ** 2
  # Rounding adds at most n/4 per coordinate; the sample variance of d
  # coordinates has relative stddev about √(2/d) ≈ 0.022.
  ratio = noise.var() / expected
  assert abs(ratio - 1) < 5 * math.sqrt(2 / d) + n / 4 / expected
  assert abs(noise.mean()) < 5 * math.sqrt(expected / d)


def test_each_client_draws_its_own_noise_and_each_round_new_noise():
  d = 256
  t = fedjit.TensorType(np.float32, [d])
  process = DistributedDpSumFactory(1.0, 2, 16, 1.0, noise_seed=0).create(t)
  state = process.initialize()
  a = _values(1, d)[0]
  b = a.copy()
  b[0] = np.nextafter(b[0], np.float32(1))   # one ulp: another fingerprint, another key
  alone_a, alone_b = (np.asarray(process.next(state, [v]).result) for v in (a, b))
  stddev = 1.0 / math.sqrt(2)   # per-coordinate noise of one client, unscaled
  assert np.std(alone_a - alone_b) > 0.5 * stddev    # independent draws differ by ~ √2·stddev
  # Reproducible for the same seed and value; a new key next round.
  np.testing.assert_array_equal(np.asarray(process.next(state, [a]).result), alone_a)
  first = process.next(state, [a])
  assert not np.allclose(process.next(first.state, [a]).result, alone_a)


def test_epsilon_is_dp_accounting_of_the_gaussian_of_the_same_variance():
  dpa = pytest.importorskip("dp_accounting")
  n, d, clip, sigma = 10, 100, 0.5, 1.2
  accountant = PrivacyAccountant(population_size=1000, delta=1e-5, sampling="poisson")
  factory = DistributedDpSumFactory(sigma, n, 18, clip, noise_seed=0, accountant=accountant)
  process = factory.create(fedjit.TensorType(np.float32, [d]))
  out = process.next(process.initialize(), _values(n, d))
  m = out.measurements
  s, padded = float(m["scale_factor"]), int(m["padded_dim"])
  # The sensitivity after rounding (beta = 0): clip + √padded/s, with TFF's leeway.
  effective = sigma * clip / (clip + math.sqrt(padded) / s + 1e-5)
  np.testing.assert_allclose(float(m["dp_query_metrics"]["effective_noise_multiplier"]),
                             effective, rtol=1e-5)
  direct = dpa.rdp.RdpAccountant()
  direct.compose(dpa.SelfComposedDpEvent(
      dpa.PoissonSampledDpEvent(n / 1000, dpa.GaussianDpEvent(effective)), 1))
  expected = direct.get_epsilon(1e-5)
  np.testing.assert_allclose(float(m["privacy"]["epsilon"]), expected, rtol=1e-4)
  assert int(m["privacy"]["rounds"]) == 1
  np.testing.assert_allclose(factory.accountant.epsilon(1), expected, rtol=1e-6)


def test_the_privacy_report_shows_a_secure_sum_noised_on_each_client():
  ddp = DistributedDpSumFactory(1.0, 10, 16, 0.5, noise_seed=0)
  trainer = learning.algorithms.build_unweighted_fed_avg(
      softmax3_model(), learning.optimizers.build_sgdm(0.1),
      model_aggregator=UnweightedMeanFactory(value_sum_factory=ddp))
  report = fedjit.privacy_report(trainer).check()
  (update,) = [f for f in report.flows if f.noise]
  assert update.intrinsic == "federated_secure_modular_sum" and update.secure
  (step,) = update.noise
  assert (step.noise.mechanism, step.noise.noise_multiplier, step.noise.clip,
          step.noise.source) == ("skellam", 1.0, 0.5, "DistributedDpSumFactory")
  assert "DP: skellam noise, noise multiplier 1, clip 0.5" in str(report)
  assert "added on each client" in str(report)


def test_bad_arguments_and_types_are_refused_with_what_to_change():
  with pytest.raises(ValueError, match=r"bits in \[1, 22\]"):
    DistributedDpSumFactory(1.0, 10, 23, 1.0)
  with pytest.raises(ValueError, match=r"bits in \[1, 22\]"):
    DistributedDpSumFactory(1.0, 10, 0, 1.0)
  with pytest.raises(TypeError, match="bits to be an int"):
    DistributedDpSumFactory(1.0, 10, 16.0, 1.0)
  with pytest.raises(ValueError, match="bits should be >= log2"):
    DistributedDpSumFactory(1.0, 1000, 8, 1.0)
  with pytest.raises(ValueError, match="too small.*increase bits"):
    DistributedDpSumFactory(1.0, 16, 4, 1.0, modclip_prob=1e-6)   # 2**8 < 16·4.9²
  with pytest.raises(ValueError, match="noise_multiplier >= 0"):
    DistributedDpSumFactory(-1.0, 10, 16, 1.0)
  with pytest.raises(ValueError, match="l2_clip > 0"):
    DistributedDpSumFactory(1.0, 10, 16, 0.0)
  with pytest.raises(ValueError, match="modclip_prob in"):
    DistributedDpSumFactory(1.0, 10, 16, 1.0, modclip_prob=0.0)
  with pytest.raises(ValueError, match="beta in"):
    DistributedDpSumFactory(1.0, 10, 16, 1.0, beta=1.0)
  with pytest.raises(ValueError, match="not supported yet"):
    DistributedDpSumFactory(1.0, 10, 16, 1.0, mechanism="distributed_dgauss")
  with pytest.raises(ValueError, match="rotation_type"):
    DistributedDpSumFactory(1.0, 10, 16, 1.0, rotation_type="qr")
  with pytest.raises(TypeError):   # adaptive clipping is not supported
    DistributedDpSumFactory(1.0, 10, 16, 1.0, auto_l2_clip=True)
  with pytest.raises(TypeError, match="float dtype"):
    DistributedDpSumFactory(1.0, 10, 16, 1.0).create(fedjit.TensorType(np.int32, [3]))
  pytest.importorskip("dp_accounting")
  with pytest.raises(ValueError, match="sampling"):
    DistributedDpSumFactory(1.0, 10, 16, 1.0, accountant=PrivacyAccountant(
        1000, sampling="local"))


def test_conditional_rounding_keeps_the_norm_within_the_inflated_bound():
  n, d, clip = 3, 64, 1.0
  values = _values(n, d, seed=2)
  process = DistributedDpSumFactory(0.0, n, 12, clip, beta=math.exp(-0.5), rotation_type="hd",
                                    noise_seed=0).create(fedjit.TensorType(np.float32, [d]))
  out = process.next(process.initialize(), values)
  s = float(out.measurements["scale_factor"])
  error = np.linalg.norm(np.asarray(out.result, np.float64) - _clipped_sum(values, clip))
  assert error <= n * math.sqrt(d) / s + 1e-5
