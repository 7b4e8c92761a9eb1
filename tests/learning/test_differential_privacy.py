"""DifferentiallyPrivateFactory and dp_aggregator: clipping against NumPy, the
noise's standard deviation (statistical tests with a fixed seed), adaptive
clipping's convergence to the target quantile, ε in the measurements, resume,
both backends, and the errors."""

import collections
import math

import numpy as np
import pytest

import fedjit
from fedjit import TensorType
from fedjit.aggregators import DifferentiallyPrivateFactory, PrivacyAccountant
from fedjit.learning import algorithms, optimizers

from test_algorithms import _clients, _model

dpa = pytest.importorskip("dp_accounting")


def numpy_clip(v, clip):
  """v · min(1, C / ‖v‖₂) over all tensors of a client's value together."""
  leaves = list(v.values()) if isinstance(v, dict) else [v]
  norm = math.sqrt(sum(float(np.sum(np.square(x, dtype=np.float64))) for x in leaves))
  scale = min(1.0, clip / norm) if norm > 0 else 1.0
  if isinstance(v, dict):
    return {k: x * scale for k, x in v.items()}
  return v * scale


def test_fedjit_aggregators_is_the_home_and_learning_aggregators_still_works():
  assert fedjit.aggregators.DifferentiallyPrivateFactory is (
      fedjit.learning.aggregators.DifferentiallyPrivateFactory)
  assert fedjit.aggregators.MeanFactory is fedjit.learning.aggregators.MeanFactory
  assert "DifferentiallyPrivateFactory" in fedjit.aggregators.__all__


def test_clipping_equals_numpy(backend):
  """No noise: the result is Σ clip(vᵢ) / clients_per_round, with the ℓ2
  norm taken over the whole structure."""
  rng = np.random.default_rng(3)
  values = [{"a": rng.normal(0, s, 2).astype(np.float32),
             "b": rng.normal(0, s, 3).astype(np.float32)} for s in (0.1, 1.0, 5.0, 0.01)]
  value_type = collections.OrderedDict(a=TensorType(np.float32, [2]),
                                       b=TensorType(np.float32, [3]))
  process = DifferentiallyPrivateFactory.gaussian_fixed(0.0, 5, clip=0.8).create(value_type)
  out = process.next(process.initialize(), values)
  clipped = [numpy_clip(v, 0.8) for v in values]
  for k in ("a", "b"):
    np.testing.assert_allclose(out.result[k], sum(c[k] for c in clipped) / 5, rtol=1e-5,
                               atol=1e-7)
  # The clipped values really have norm ≤ 0.8, and the large ones exactly 0.8.
  norms = [math.sqrt(sum(float(np.sum(c[k] ** 2)) for k in c)) for c in clipped]
  assert max(norms) <= 0.8 + 1e-6 and sum(abs(n - 0.8) < 1e-6 for n in norms) >= 2
  assert out.measurements == collections.OrderedDict(dp_query_metrics=(), dp=())
  assert out.state["rounds"] == 1 and out.state["clip"] == np.float32(0.8)


def test_fixed_noise_has_stddev_noise_multiplier_times_clip_over_clients(backend):
  """Clients send zeros, so the result is the noise / clients_per_round,
  N(0, (σC/n)²) in every coordinate: with d = 20,000 coordinates the sample
  stddev has a standard error of about stddev / √(2d) = 0.5%; allow 5 of
  them. The two tensors get independent noise, and so do two rounds."""
  sigma, clip, n, d = 2.0, 0.5, 4, 10_000
  expected = sigma * clip / n
  value_type = collections.OrderedDict(a=TensorType(np.float32, [d]),
                                       b=TensorType(np.float32, [d]))
  process = DifferentiallyPrivateFactory.gaussian_fixed(
      sigma, n, clip, noise_seed=1).create(value_type)
  zeros = {"a": np.zeros(d, np.float32), "b": np.zeros(d, np.float32)}
  state = process.initialize()
  first = process.next(state, [zeros] * 3)
  noise = np.concatenate([first.result["a"], first.result["b"]])
  assert abs(noise.std() / expected - 1) < 5 / math.sqrt(2 * 2 * d)
  assert abs(noise.mean()) < 5 * expected / math.sqrt(2 * d)
  assert abs(np.corrcoef(first.result["a"], first.result["b"])[0, 1]) < 5 / math.sqrt(d)
  second = process.next(first.state, [zeros] * 3)
  assert abs(np.corrcoef(first.result["a"], second.result["a"])[0, 1]) < 5 / math.sqrt(d)
  # The same key gives the same noise.
  again = process.next(state, [zeros] * 3)
  np.testing.assert_array_equal(again.result["a"], first.result["a"])


def test_adaptive_value_noise_is_raised_for_the_count_noise():
  """σ_v = (σ⁻² - (2·0.05·n)⁻²)^(-1/2) (Andrew et al. 2021, section 3.1):
  for σ = 1.5 and n = 20, σ_v = (1/2.25 - 1/4)^(-1/2) = 2.2678."""
  sigma, n, clip, d = 1.5, 20, 0.3, 40_000
  expected = (sigma ** -2 - (2 * 0.05 * n) ** -2) ** -0.5 * clip / n
  assert expected == pytest.approx(2.26779 * clip / n, rel=1e-5)
  process = DifferentiallyPrivateFactory.gaussian_adaptive(
      sigma, n, initial_l2_norm_clip=clip, noise_seed=2).create(TensorType(np.float32, [d]))
  noise = process.next(process.initialize(), [np.zeros(d, np.float32)] * 2).result
  assert abs(noise.std() / expected - 1) < 5 / math.sqrt(2 * d)


def test_adaptive_clip_update_formula():
  """One step with no noise: f = the fraction with norm ≤ C, then
  C ← C · exp(-lr · (f - target))."""
  norms = [0.05, 0.2, 0.3, 0.09, 5.0]
  values = [np.array([x], np.float32) for x in norms]
  process = DifferentiallyPrivateFactory.gaussian_adaptive(
      0.0, 5, initial_l2_norm_clip=0.1, target_unclipped_quantile=0.7,
      learning_rate=0.3).create(TensorType(np.float32, [1]))
  out = process.next(process.initialize(), values)
  f = np.mean(np.array(norms) <= 0.1)  # 2/5
  assert out.measurements["dp_query_metrics"]["clip"] == pytest.approx(
      0.1 * math.exp(-0.3 * (f - 0.7)), rel=1e-6)
  np.testing.assert_allclose(out.result, sum(min(x, 0.1) for x in norms) / 5, rtol=1e-6)


@pytest.mark.parametrize("target", [0.3, 0.8])
def test_adaptive_clip_converges_to_the_target_quantile(target):
  """100 clients with log-normal norms: after 150 rounds from C = 0.1 the
  clip sits between the norms' (target ± 0.05) quantiles; with the default
  count noise (stddev 5 clients of 100) it stays within ± 0.15."""
  rng = np.random.default_rng(0)
  norms = rng.lognormal(0.0, 1.0, 100)
  values = [np.array([x, 0.0], np.float32) for x in norms]
  for sigma, slack in ((0.0, 0.05), (1.0, 0.15)):
    lo, hi = np.quantile(norms, [target - slack, target + slack])
    process = DifferentiallyPrivateFactory.gaussian_adaptive(
        sigma, 100, target_unclipped_quantile=target, clipped_count_stddev=5.0,
        noise_seed=0).create(TensorType(np.float32, [2]))
    state = process.initialize()
    clips = []
    for _ in range(150):
      out = process.next(state, values)
      state = out.state
      clips.append(float(out.measurements["dp_query_metrics"]["clip"]))
    assert all(lo <= c <= hi for c in clips[-20:]), (sigma, lo, hi, clips[-20:])


def test_epsilon_in_measurements_equals_dp_accounting_called_directly(backend):
  factory = DifferentiallyPrivateFactory.gaussian_fixed(
      1.2, 10, clip=1.0, noise_seed=0, accountant=PrivacyAccountant(500, delta=1e-5))
  process = factory.create(TensorType(np.float32, [2]))
  state = process.initialize()
  for n in range(1, 4):
    out = process.next(state, [np.ones(2, np.float32)] * 10)
    state = out.state
    rdp = dpa.rdp.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE)
    rdp.compose(dpa.SelfComposedDpEvent(
        dpa.SampledWithoutReplacementDpEvent(500, 10, dpa.GaussianDpEvent(0.6)), n))
    privacy = out.measurements["privacy"]
    assert privacy["rounds"] == n and privacy["delta"] == np.float32(1e-5)
    assert privacy["epsilon"] == pytest.approx(rdp.get_epsilon(1e-5), rel=1e-6)


def test_poisson_accounting_for_adaptive_clipping_uses_the_total_noise_multiplier():
  factory = DifferentiallyPrivateFactory.gaussian_adaptive(
      1.0, 50, noise_seed=0,
      accountant=PrivacyAccountant(5000, delta=1e-6, sampling="poisson"))
  assert factory.accountant.noise_multiplier == 1.0
  process = factory.create(TensorType(np.float32))
  out = process.next(process.initialize(), [np.float32(1.0)] * 3)
  rdp = dpa.rdp.RdpAccountant()
  rdp.compose(dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.0)))
  assert out.measurements["privacy"]["epsilon"] == pytest.approx(rdp.get_epsilon(1e-6),
                                                                 rel=1e-6)


def _dp_fed_avg(**kwargs):
  aggregator = fedjit.learning.dp_aggregator(
      0.5, 20, accountant=PrivacyAccountant(100, delta=1e-4), noise_seed=7, **kwargs)
  return algorithms.build_unweighted_fed_avg(
      _model(), optimizers.build_sgdm(0.1), server_optimizer_fn=optimizers.build_sgdm(1.0),
      model_aggregator=aggregator)


def test_dp_fed_avg_is_the_same_on_both_backends():
  clients = _clients(sizes=(8, 4, 8))  # batches of one shape: fewer compilations
  runs = {}
  for name in ("reference", "vectorized"):
    with fedjit.backend(name):
      trainer = _dp_fed_avg()
      state = trainer.initialize()
      for _ in range(2):
        result = trainer.next(state, clients)
        state = result.state
      runs[name] = (trainer.get_model_weights(state).trainable, result.metrics["aggregator"])
  (w_ref, m_ref), (w_vec, m_vec) = runs["reference"], runs["vectorized"]
  for k in ("w", "b"):
    np.testing.assert_allclose(w_vec[k], w_ref[k], rtol=1e-5, atol=1e-6)
  assert m_vec["zeroing"]["privacy"] == m_ref["zeroing"]["privacy"]
  assert m_ref["zeroing"]["privacy"]["rounds"] == 2
  assert m_ref["zeroing_norm"] > 0 and m_ref["zeroed_count"] == 0
  np.testing.assert_allclose(m_vec["zeroing"]["dp_query_metrics"]["clip"],
                             m_ref["zeroing"]["dp_query_metrics"]["clip"], rtol=1e-6)


def test_resume_from_a_checkpoint_gives_the_same_epsilon_and_weights(tmp_path):
  clients = _clients()
  trainer = _dp_fed_avg()
  state = trainer.initialize()
  for _ in range(3):
    result = trainer.next(state, clients)
    state = result.state
  resumed = trainer.initialize()
  for _ in range(2):
    resumed = trainer.next(resumed, clients).state
  path = tmp_path / "dp.safetensors"
  fedjit.learning.save_checkpoint(path, resumed)
  resumed = fedjit.learning.load_checkpoint(path, trainer.initialize())
  again = trainer.next(resumed, clients)
  assert again.metrics["aggregator"] == result.metrics["aggregator"]
  assert again.metrics["aggregator"]["zeroing"]["privacy"]["rounds"] == 3
  for k in ("w", "b"):
    np.testing.assert_array_equal(trainer.get_model_weights(again.state).trainable[k],
                                  trainer.get_model_weights(state).trainable[k])


def test_dp_aggregator_zeroes_an_outsized_update_and_counts_it(backend):
  """TFF's zeroing: the first zeroing norm is 2·10 + 1 = 21 (ℓ∞)."""
  process = fedjit.learning.dp_aggregator(0.0, 3).create(TensorType(np.float32, [2]))
  values = [np.array([0.05, 0.0], np.float32), np.array([1e6, 0.0], np.float32),
            np.array([0.0, 0.02], np.float32)]
  out = process.next(process.initialize(), values)
  assert out.measurements["zeroing_norm"] == 21.0 and out.measurements["zeroed_count"] == 1
  np.testing.assert_allclose(out.result, [0.05 / 3, 0.02 / 3], rtol=1e-6)
  plain = fedjit.learning.dp_aggregator(0.0, 3, zeroing=False).create(
      TensorType(np.float32, [2]))
  assert "zeroing" not in plain.next(plain.initialize(), values).measurements


def test_dp_aggregators_are_unweighted():
  with pytest.raises(TypeError, match="unweighted aggregation factory"):
    algorithms.build_weighted_fed_avg(_model(), optimizers.build_sgdm(0.1),
                                      model_aggregator=fedjit.learning.dp_aggregator(1.0, 50))


def test_a_deployment_seed_comes_from_the_os():
  factory = DifferentiallyPrivateFactory.gaussian_fixed(1.0, 10, 1.0)
  keys = {tuple(factory.create(TensorType(np.float32)).initialize()["key"]) for _ in range(3)}
  assert len(keys) == 3


@pytest.mark.parametrize("build, match", [
    (lambda: DifferentiallyPrivateFactory.gaussian_fixed(-1.0, 10, 1.0),
     "noise_multiplier >= 0"),
    (lambda: DifferentiallyPrivateFactory.gaussian_fixed(1.0, 0, 1.0),
     "clients_per_round > 0"),
    (lambda: DifferentiallyPrivateFactory.gaussian_fixed(1.0, 10, 0.0), "clip > 0"),
    (lambda: DifferentiallyPrivateFactory.gaussian_fixed(1.0, 10, float("nan")), "finite"),
    (lambda: DifferentiallyPrivateFactory.gaussian_adaptive(1.0, 100, -0.1),
     "initial_l2_norm_clip > 0"),
    (lambda: DifferentiallyPrivateFactory.gaussian_adaptive(
        1.0, 100, target_unclipped_quantile=1.5), "between 0 and 1"),
    (lambda: DifferentiallyPrivateFactory.gaussian_adaptive(1.0, 100, learning_rate=-1.0),
     "learning_rate >= 0"),
    (lambda: DifferentiallyPrivateFactory.gaussian_adaptive(1.0, 5),
     "clipped_count_stddev = 0.25.*too low"),
    (lambda: fedjit.learning.dp_aggregator(1.0, 0), "clients_per_round > 0"),
])
def test_bad_arguments_raise_value_errors(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_bad_types_raise_type_errors():
  with pytest.raises(TypeError, match="noise_multiplier to be a number"):
    DifferentiallyPrivateFactory.gaussian_fixed("1.0", 10, 1.0)
  with pytest.raises(TypeError, match="noise_seed"):
    DifferentiallyPrivateFactory.gaussian_fixed(1.0, 10, 1.0, noise_seed=-3)
  with pytest.raises(TypeError, match="PrivacyAccountant"):
    DifferentiallyPrivateFactory.gaussian_fixed(1.0, 10, 1.0, accountant=1e-5)
  with pytest.raises(TypeError, match="float dtype"):
    DifferentiallyPrivateFactory.gaussian_fixed(1.0, 10, 1.0).create(TensorType(np.int32))
  with pytest.raises(TypeError, match="zeroing to be True or False"):
    fedjit.learning.dp_aggregator(1.0, 50, zeroing="yes")


def test_a_dp_round_without_accountant_serializes():
  """Without the accountant's host callback the process exports with
  jax.export and runs the same after deserialization."""
  process = DifferentiallyPrivateFactory.gaussian_adaptive(
      1.0, 30, noise_seed=0).create(TensorType(np.float32, [2]))
  state, values = process.initialize(), [np.ones(2, np.float32)] * 3
  again = fedjit.deserialize(fedjit.serialize(process.next))
  np.testing.assert_array_equal(again(state, values).result,
                                process.next(state, values).result)


def test_tree_aggregation_noise_follows_the_binary_tree():
  """(Server-side noise, the same code on every backend; the default one.)
  Clients send zeros. The running sum of the results after t rounds has
  the noise of popcount(t) tree nodes, each N(0, (σC/n)²); round t alone has
  1 + (t's trailing zero bits) of them (N(t) - N(t-1)). Tolerance: 5
  standard errors of a sample stddev over d coordinates, 1/√(2d)."""
  sigma, clip, n, d = 1.0, 2.0, 4, 10_000
  unit = sigma * clip / n
  process = DifferentiallyPrivateFactory.tree_aggregation(
      sigma, n, clip, noise_seed=3).create(TensorType(np.float32, [d]))
  state, running = process.initialize(), np.zeros(d)
  tol = 5 / math.sqrt(2 * d)
  for t in range(1, 9):
    out = process.next(state, [np.zeros(d, np.float32)] * 2)
    state = out.state
    running += out.result
    trailing = (t & -t).bit_length() - 1
    assert abs(out.result.std() / (unit * math.sqrt(1 + trailing)) - 1) < tol, t
    assert abs(running.std() / (unit * math.sqrt(bin(t).count("1"))) - 1) < tol, t
  assert out.state["rounds"] == 8


def test_tree_aggregation_clips_as_gaussian_fixed():
  values = [np.array([3.0, 4.0], np.float32), np.array([0.1, 0.0], np.float32)]
  process = DifferentiallyPrivateFactory.tree_aggregation(0.0, 2, 1.0).create(
      TensorType(np.float32, [2]))
  out = process.next(process.initialize(), values)
  np.testing.assert_allclose(out.result, (np.array([0.6, 0.8]) + values[1]) / 2, rtol=1e-6)


def test_tree_aggregation_arguments():
  with pytest.raises(NotImplementedError, match="use_efficient=False"):
    DifferentiallyPrivateFactory.tree_aggregation(1.0, 10, 1.0, use_efficient=True)
  with pytest.raises(ValueError, match="l2_norm_clip > 0"):
    DifferentiallyPrivateFactory.tree_aggregation(1.0, 10, 0.0)
  with pytest.raises(ValueError, match="noise_multiplier >= 0"):
    DifferentiallyPrivateFactory.tree_aggregation(-1.0, 10, 1.0)


def test_run_training_reports_epsilon_and_a_resumed_run_reports_the_same(tmp_path):
  """run_training samples a fixed number of clients without replacement,
  which the default accountant assumes; a run resumed from its checkpoint
  after round 2 reports round 3's ε and weights as an uninterrupted run."""
  rng = np.random.default_rng(0)
  data = fedjit.simulation.ClientData.from_arrays(
      {str(i): (rng.normal(size=(6, 4)).astype(np.float32),
                rng.integers(0, 3, 6).astype(np.int32)) for i in range(30)}
  ).preprocess(lambda ds: ds.batch(3))

  trainer = algorithms.build_unweighted_fed_avg(
      _model(), optimizers.build_sgdm(0.1),
      model_aggregator=fedjit.learning.dp_aggregator(
          0.5, 10, accountant=PrivacyAccountant(30, delta=1e-3), noise_seed=0))

  def train(rounds, **kwargs):
    return fedjit.simulation.run_training(trainer, data, rounds=rounds, clients_per_round=10,
                                          progress=False, plot=False, tensorboard=False,
                                          print_fn=lambda s: None, **kwargs)

  whole = train(3)
  key = "aggregator/zeroing/privacy/epsilon"
  rdp = dpa.rdp.RdpAccountant(neighboring_relation=dpa.NeighboringRelation.REPLACE_ONE)
  rdp.compose(dpa.SelfComposedDpEvent(
      dpa.SampledWithoutReplacementDpEvent(30, 10, dpa.GaussianDpEvent(0.25)), 3))
  assert whole.history[-1][key] == pytest.approx(rdp.get_epsilon(1e-3), rel=1e-6)
  train(2, output_dir=tmp_path, checkpoint_every=1)
  resumed = train(3, output_dir=tmp_path, checkpoint_every=1, resume=True)
  assert resumed.history[-1][key] == whole.history[-1][key]
  assert resumed.history[-1]["aggregator/zeroing/privacy/rounds"] == 3
  for a, b in zip(np.asarray(whole.state.global_model_weights.trainable["w"]),
                  np.asarray(resumed.state.global_model_weights.trainable["w"])):
    np.testing.assert_array_equal(a, b)
