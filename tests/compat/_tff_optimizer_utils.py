"""Port of TFF's optimizer test utilities, shared by the optimizer compat tests.

Source: google-parfait/tensorflow-federated,
tensorflow_federated/python/learning/optimizers/optimizer_test_utils.py
(`test_quadratic_problem`, `TestCase.assert_optimizers_numerically_close`),
plus the spec constants every `*_test.py` there defines.

Spelling: `tf.TensorSpec([1], tf.float32)` -> `jax.ShapeDtypeStruct((1,),
np.float32)`; `tf.function` -> plain functions; `tf.keras.optimizers.X` ->
Keras 3's `keras.optimizers.X` on its JAX backend; TF's `assertAllClose`
(rtol=atol=1e-6 for float32) -> `assert_all_close` with the same tolerances;
`assertEqual` / `assertAllEqual` on nests holding arrays -> `assert_trees_equal`.
"""

import os

import jax
import numpy as np
import pytest

# spelling: tf.TensorSpec([n], tf.float32) -> jax.ShapeDtypeStruct((n,), np.float32)
SCALAR_SPEC = jax.ShapeDtypeStruct((1,), np.float32)
STRUCT_SPEC = [jax.ShapeDtypeStruct((2,), np.float32), jax.ShapeDtypeStruct((3,), np.float32)]
NESTED_SPEC = [
    jax.ShapeDtypeStruct((10,), np.float32),
    [jax.ShapeDtypeStruct((20,), np.float32), [jax.ShapeDtypeStruct((30,), np.float32)]],
]
SPECS = {"scalar_spec": SCALAR_SPEC, "struct_spec": STRUCT_SPEC, "nested_spec": NESTED_SPEC}
EMPTY_TREES = {"empty_list": [], "empty_dict": {}, "empty_nested_structure": [([], []), {}]}

# Positive-definite matrix with maximal eigenvalue approximately 13.3 and
# condition number approximately 260 (TFF's _TEST_MATRIX, verbatim).
_TEST_MATRIX = [
    [3.05979016, -0.67965499, -2.51916374, -0.98797549, -1.23950244],
    [-0.67965499, 3.65246689, -0.47892836, -1.56662479, -0.27436542],
    [-2.51916374, -0.47892836, 7.12618873, 4.98172794, 3.10724048],
    [-0.98797549, -1.56662479, 4.98172794, 4.259855, 1.48831719],
    [-1.23950244, -0.27436542, 3.10724048, 1.48831719, 4.52992126],
]

_INITIAL_W = [
    [-0.60170661],
    [1.85227818],
    [-0.01349722],
    [-1.05771093],
    [0.82254491],
]


def ones_like_spec(spec):
  """spelling: tf.nest.map_structure(lambda s: tf.ones(s.shape, s.dtype), spec)."""
  return jax.tree.map(lambda s: np.ones(s.shape, s.dtype), spec)


def test_quadratic_problem():
  """TFF's 5-dimensional quadratic `(1/2) w^T A w`, optimum at w* = 0.

  Returns (initial_w, f, grad_w) as functions (spelling: tf.function -> plain).
  """
  a = np.array(_TEST_MATRIX, np.float32)

  def fn(w):
    return (np.asarray(w).T @ a @ np.asarray(w)) / 2

  def grad_fn(w):
    return a @ np.asarray(w)

  def initial_w():
    return np.array(_INITIAL_W, np.float32)

  return initial_w, fn, grad_fn


test_quadratic_problem.__test__ = False  # A helper, not a test.


def assert_all_close(actual, expected, rtol=1e-6, atol=1e-6):
  """spelling: tf.test.TestCase.assertAllClose (float32 defaults 1e-6) -> NumPy."""
  if isinstance(actual, (list, tuple)):
    actual = np.stack([np.asarray(a, np.float64) for a in actual])
  np.testing.assert_allclose(np.asarray(actual, np.float64),
                             np.asarray(expected, np.float64), rtol=rtol, atol=atol)


def assert_trees_equal(a, b):
  """spelling: assertEqual / assertAllEqual on nests of arrays -> structure and
  leaf-by-leaf equality (`None` leaves included)."""
  is_none = lambda x: x is None
  leaves_a, def_a = jax.tree.flatten(a, is_leaf=is_none)
  leaves_b, def_b = jax.tree.flatten(b, is_leaf=is_none)
  assert def_a == def_b, f"structures differ: {def_a} vs {def_b}"
  for x, y in zip(leaves_a, leaves_b):
    if x is None or y is None:
      assert x is y
    else:
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def keras():
  """Keras 3 on its JAX backend (skips the test if unavailable)."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  module = pytest.importorskip("keras")
  if module.backend.backend() != "jax":
    pytest.skip("Keras is not on its JAX backend")
  return module


def match_keras_inputs(steps=10, seed=2021):
  """TFF's test_match_keras inputs: weights [10, 2] and [2], 10 gradient steps.

  spelling: tf.random.Generator.from_seed(2021).normal -> NumPy's
  default_rng(2021).normal (other random numbers; the check is a comparison).
  """
  rng = np.random.default_rng(seed)
  shapes = [(10, 2), (2,)]
  random_vector = lambda: [rng.normal(size=s).astype(np.float32) for s in shapes]
  initial_weight = random_vector()
  gradients = [random_vector() for _ in range(steps)]
  return initial_weight, gradients


def assert_optimizers_numerically_close(initial_weight, gradients, tff_optimizer_fn,
                                        keras_optimizer_fn):
  """TFF's `assert_optimizers_numerically_close`: fedjit's `initialize`/`next`
  against Keras's own update on the same weights and gradients (rtol=atol=5e-5)."""
  k = keras()

  def run_fedjit():
    weights = [np.array(w) for w in initial_weight]
    optimizer = tff_optimizer_fn()
    state = optimizer.initialize(
        jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype), weights))
    for grad in gradients:
      state, weights = optimizer.next(state, weights, grad)
    return weights

  def run_keras():
    variables = [k.Variable(np.array(w)) for w in initial_weight]
    optimizer = keras_optimizer_fn(k)
    for grad in gradients:
      optimizer.apply_gradients(zip(grad, variables))
    return [np.asarray(v.value) for v in variables]

  for a, b in zip(run_fedjit(), run_keras()):
    np.testing.assert_allclose(np.asarray(a), b, rtol=5e-5, atol=5e-5)
