"""Local DP: clients clip and noise their own values; accounting per client."""

import math

import numpy as np
import pytest

import fedjit
from fedjit.learning.aggregators import DifferentiallyPrivateFactory, PrivacyAccountant
from fedjit.learning.aggregators._local_dp import LocalGaussianFactory

V = fedjit.TensorType(np.float32, [4000])


def _values(n=50, seed=0):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=4000).astype(np.float32) * (0.1 if i % 2 else 10.0) for i in range(n)]


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
def test_noise_has_the_promised_scale_and_clipping_is_counted(backend):
  values = _values()
  sigma, clip = 2.0, 1.0
  process = DifferentiallyPrivateFactory.local_gaussian(sigma, clip, noise_seed=3).create(V)
  with fedjit.backend(backend):
    out = process.next(process.initialize(), values)
  clipped = [v * clip / max(np.linalg.norm(v.astype(np.float64)), clip) for v in values]
  exact = np.mean(clipped, axis=0)
  noise = np.asarray(out.result, np.float64) - exact
  # The mean of n independent N(0, (σC)²) noises: stddev σC/√n per coordinate.
  expected_std = sigma * clip / math.sqrt(len(values))
  assert abs(noise.std() / expected_std - 1) < 0.05
  assert abs(noise.mean()) < 4 * expected_std / math.sqrt(noise.size)
  # Even clients have norm ~ 10·√4000 > 1, odd ones ~ 0.1·√4000 ≈ 6.3 > 1 too.
  assert int(out.measurements["clipped_count"]) == sum(
      np.linalg.norm(v) > clip for v in values)


def test_clients_draw_different_noise_and_rounds_new_noise():
  values = [np.zeros(4000, np.float32) + i for i in range(3)]
  process = LocalGaussianFactory(1.0, 1e6, noise_seed=0).create(V)
  state = process.initialize()
  first = process.next(state, values)
  second = process.next(first.state, values)
  assert not np.allclose(first.result, second.result)  # a new key each round
  # Reproducible: the same seed gives the same round.
  again = LocalGaussianFactory(1.0, 1e6, noise_seed=0).create(V)
  np.testing.assert_array_equal(again.next(again.initialize(), values).result, first.result)


def _gaussian_epsilon(sigma: float, delta: float) -> float:
  """The tight ε of one Gaussian mechanism (sensitivity 1, noise σ) at δ
  (Balle & Wang 2018): δ(ε) = Φ(-εσ + 1/(2σ)) - e^ε Φ(-εσ - 1/(2σ)), solved by
  bisection. Independent of dp-accounting."""
  phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))
  d = lambda e: phi(-e * sigma + 1 / (2 * sigma)) - math.exp(e) * phi(-e * sigma - 1 / (2 * sigma))
  lo, hi = 0.0, 50.0
  for _ in range(200):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if d(mid) > delta else (lo, mid)
  return hi


def test_local_accounting_is_the_clients_own_gaussian_mechanism():
  pytest.importorskip("dp_accounting")
  acc = PrivacyAccountant(population_size=1000, delta=1e-5, sampling="local",
                          noise_multiplier=2.0, clients_per_round=10)
  # σ = 2 on a value that moves by 2·clip: a Gaussian mechanism with σ/2 = 1.
  tight = _gaussian_epsilon(1.0, 1e-5)
  assert acc.epsilon(1, method="pld") == pytest.approx(tight, rel=0.02)
  assert acc.epsilon(1) >= tight  # RDP is an upper bound
  assert acc.epsilon(10) > acc.epsilon(1)


def test_epsilon_is_reported_every_round():
  pytest.importorskip("dp_accounting")
  acc = PrivacyAccountant(population_size=1000, delta=1e-5, sampling="local")
  factory = DifferentiallyPrivateFactory.local_gaussian(2.0, 1.0, noise_seed=0, accountant=acc)
  process = factory.create(V)
  out = process.next(process.initialize(), _values(4))
  out = process.next(out.state, _values(4))
  privacy = out.measurements["privacy"]
  assert int(privacy["rounds"]) == 2
  assert float(privacy["epsilon"]) == pytest.approx(factory.accountant.epsilon(2), rel=1e-5)


def test_errors():
  with pytest.raises(ValueError, match="clip > 0"):
    LocalGaussianFactory(1.0, 0.0)
  with pytest.raises(ValueError, match="noise_multiplier >= 0"):
    LocalGaussianFactory(-1.0, 1.0)
  with pytest.raises(TypeError, match="noise_seed"):
    LocalGaussianFactory(1.0, 1.0, noise_seed="x")
  pytest.importorskip("dp_accounting")
  with pytest.raises(ValueError, match="sampling='local'"):
    LocalGaussianFactory(1.0, 1.0, accountant=PrivacyAccountant(1000))
