"""SecureSumFactory and SecureModularSumFactory (TFF's semantics), checked by hand."""

import numpy as np
import pytest

import fedjit
from fedjit.aggregators import SecureModularSumFactory, SecureSumFactory

I32 = fedjit.TensorType(np.int32)
F32x3 = fedjit.TensorType(np.float32, [3])


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
def test_integer_values_are_clipped_and_summed_exactly(backend):
  process = SecureSumFactory(10, -2).create(I32)
  with fedjit.backend(backend):
    out = process.next(process.initialize(), [3, 12, -5, 7])
  # Clipped: 3, 10, -2, 7.
  assert int(out.result) == 18
  m = out.measurements
  assert (int(m["secure_upper_clipped_count"]), int(m["secure_lower_clipped_count"])) == (1, 1)
  assert (int(m["secure_upper_threshold"]), int(m["secure_lower_threshold"])) == (10, -2)


def test_only_an_upper_bound_means_plus_minus():
  process = SecureSumFactory(5).create(I32)
  out = process.next(process.initialize(), [-9, 4, 9])
  assert int(out.result) == -5 + 4 + 5


@pytest.mark.parametrize("backend", ["vectorized", "reference"])
def test_float_values_are_quantized_within_half_a_step(backend):
  rng = np.random.default_rng(0)
  values = [rng.uniform(-2.0, 2.0, 3).astype(np.float32) for _ in range(20)]
  values[0] = np.array([5.0, -7.0, 0.5], np.float32)  # clipped to [-2, 2] both ways
  process = SecureSumFactory(2.0, -2.0).create(F32x3)
  with fedjit.backend(backend):
    out = process.next(process.initialize(), values)
  clipped = [np.clip(v.astype(np.float64), -2.0, 2.0) for v in values]
  step = 4.0 / (2 ** 24 - 1)  # 24 bits in 32-bit JAX
  np.testing.assert_allclose(out.result, np.sum(clipped, axis=0), atol=20 * step / 2 + 1e-5)
  assert int(out.measurements["secure_upper_clipped_count"]) == 1
  assert int(out.measurements["secure_lower_clipped_count"]) == 1


def test_a_sum_of_zeros_is_exactly_zero():
  process = SecureSumFactory(3.0, -1.0).create(F32x3)
  out = process.next(process.initialize(), [np.zeros(3, np.float32)] * 5)
  np.testing.assert_allclose(out.result, np.zeros(3), atol=5 * 4.0 / (2 ** 24 - 1) + 1e-6)


# TFF's SecureModularSumFactoryExecutionTest cases (secure_test.py), verbatim.
@pytest.mark.parametrize("modulus, client_data, expected_sum", [
    (2, [0, 1], 1), (2, [0, 1, 1], 0), (2, [0, 1, 1, 1], 1), (8, [1, 2, 3], 6),
    (8, [1, 2, 3, 4], 2), (22, [22], 0), (22, [220], 0), (22, [-1, 7], 6)])
def test_modular_sum_non_symmetric(modulus, client_data, expected_sum):
  process = SecureModularSumFactory(modulus, symmetric_range=False).create(I32)
  assert int(process.next(process.initialize(), client_data).result) == expected_sum


@pytest.mark.parametrize("modulus, client_data, expected_sum", [
    (2, [0, 1], 1), (2, [0, 1, 1], -1), (2, [0, 1, 1, 1], 0), (2, [0, -1], -1),
    (2, [0, -1, -1], 1), (2, [0, -1, -1, -1], 0), (8, [1, 2, 3], 6), (8, [1, 2, 3, 4], -5),
    (8, [-1, -2, -3, -4], 5), (22, [22], -21), (22, [-22], 21), (22, [43 * 5], 0),
    (22, [112, 123], 20)])
def test_modular_sum_symmetric(modulus, client_data, expected_sum):
  process = SecureModularSumFactory(modulus, symmetric_range=True).create(I32)
  assert int(process.next(process.initialize(), client_data).result) == expected_sum


def test_modular_sum_of_a_structure():
  t = fedjit.StructType([fedjit.TensorType(np.int32, [2]), I32])
  process = SecureModularSumFactory(8).create(t)
  out = process.next(process.initialize(), [(np.array([1, 2], np.int32), np.int32(3)),
                                            (np.array([4, 5], np.int32), np.int32(6))])
  np.testing.assert_array_equal(out.result[0], [5, 7])
  assert int(out.result[1]) == 1


def test_tff_int_constant_bounds():
  # TFF's test_int_constant_bounds.
  process = SecureSumFactory(upper_bound_threshold=1, lower_bound_threshold=-1).create(I32)
  out = process.next(process.initialize(), [-2, -1, 0, 1, 2, 3])
  assert int(out.result) == 1
  m = out.measurements
  assert (int(m["secure_upper_clipped_count"]), int(m["secure_lower_clipped_count"]),
          int(m["secure_upper_threshold"]), int(m["secure_lower_threshold"])) == (2, 1, 1, -1)


def test_tff_float_constant_bounds():
  # TFF's test_float_constant_bounds; TFF quantizes to 32 bits, fedjit in 32-bit
  # JAX to 16, so the tolerance is 16-bit quantization's: half a step per client.
  process = SecureSumFactory(1.0, -1.0).create(fedjit.TensorType(np.float32))
  out = process.next(process.initialize(), [-2.5, -0.5, 0.0, 1.0, 1.5, 2.5])
  np.testing.assert_allclose(out.result, 1.5, atol=6 * (2.0 / (2 ** 16 - 1)) / 2)
  m = out.measurements
  assert (int(m["secure_upper_clipped_count"]), int(m["secure_lower_clipped_count"])) == (2, 1)
  assert (float(m["secure_upper_threshold"]), float(m["secure_lower_threshold"])) == (1.0, -1.0)


def test_tff_float_32_larger_than_2_pow_32():
  process = SecureSumFactory(upper_bound_threshold=float(2 ** 34)).create(
      fedjit.TensorType(np.float32))
  out = process.next(process.initialize(), [float(2 ** 33), float(2 ** 33), float(2 ** 34)])
  step = 2.0 ** 35 / (2 ** 16 - 1)
  np.testing.assert_allclose(out.result, float(2 ** 35), atol=3 * step / 2)


def test_errors_match_tff():
  with pytest.raises(TypeError, match="same types"):
    SecureSumFactory(10, 1.5)
  with pytest.raises(ValueError, match="must be positive"):
    SecureSumFactory(-3)
  with pytest.raises(ValueError, match="must be larger"):
    SecureSumFactory(1.0, 2.0)
  with pytest.raises(TypeError, match="configured for integer"):
    SecureSumFactory(10).create(F32x3)
  with pytest.raises(TypeError, match="configured for floating"):
    SecureSumFactory(1.0).create(I32)
  with pytest.raises(TypeError, match="one dtype"):
    SecureSumFactory(1.0).create(fedjit.StructType([F32x3, fedjit.TensorType(np.float16)]))
  with pytest.raises(ValueError, match="modulus must be positive"):
    SecureModularSumFactory(0)
  with pytest.raises(TypeError, match="integer modulus"):
    SecureModularSumFactory(2.5)


def test_the_privacy_report_shows_only_secure_sums():
  process = SecureSumFactory(2.0).create(F32x3)
  report = fedjit.privacy_report(process)
  assert report.flows and all(f.secure for f in report.flows)
