"""fedjit.learning.optimizers against hand-written NumPy references."""

import collections
import inspect
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedjit
from conftest import batched_clients, softmax3_model
from fedjit.learning import optimizers

# Keras 3 on NumPy 2 warns about its own Variable.__array__; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

# Three steps of gradients on a small pytree. Element [1] of "b" shrinks after
# the first step so Yogi's sign(g**2 - s) takes both signs; "w"[0, 2] is zero.
PARAMS = {"b": np.array([0.5, -1.0], np.float32),
          "w": np.array([[1.0, 2.0, -0.5], [0.0, 3.0, 1.5]], np.float32)}
GRADS = [
    {"b": np.array([1.0, 2.0]), "w": np.array([[0.5, -1.0, 0.0], [2.0, 0.1, -3.0]])},
    {"b": np.array([-0.5, 0.01]), "w": np.array([[1.5, -0.2, 0.0], [1.0, 0.3, -2.0]])},
    {"b": np.array([0.25, 0.02]), "w": np.array([[-1.0, 0.4, 0.0], [0.5, -0.6, 1.0]])},
]


# ---------------------------------------------------------------------------
# NumPy references: each returns the parameters after every step.


def _run_reference(step, init_state):
  params = {k: v.astype(np.float64) for k, v in PARAMS.items()}
  state = {k: init_state(v) for k, v in params.items()}
  out = []
  for t, grads in enumerate(GRADS, start=1):
    for k in params:
      params[k], state[k] = step(params[k], grads[k], state[k], t)
    out.append({k: v.copy() for k, v in params.items()})
  return out


def np_sgd(lr):
  return _run_reference(lambda w, g, s, t: (w - lr * g, s), lambda p: None)


def np_sgdm(lr, momentum, nesterov=False):
  def step(w, g, v, t):
    v = momentum * v + g
    return w - lr * ((g + momentum * v) if nesterov else v), v
  return _run_reference(step, np.zeros_like)


def np_adam(lr, b1=0.9, b2=0.999, eps=1e-7):
  # TFF's build_adam (and Keras's Adam): the learning rate carries the bias
  # correction and epsilon is added to the uncorrected sqrt(v), not to
  # sqrt(v / (1 - b2**t)) as optax.adam does.
  def step(w, g, s, t):
    acc, v = s
    acc = b1 * acc + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    normalized_lr = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return w - normalized_lr * acc / (np.sqrt(v) + eps), (acc, v)
  return _run_reference(step, lambda p: (np.zeros_like(p), np.zeros_like(p)))


def np_adamw(lr, b1=0.9, b2=0.999, eps=1e-7, wd=0.004):
  # TFF's build_adamw: decoupled weight decay on the weights before the step.
  def step(w, g, s, t):
    acc, v = s
    acc = b1 * acc + (1 - b1) * g
    v = b2 * v + (1 - b2) * g**2
    normalization = np.sqrt(1 - b2**t) / (1 - b1**t)
    return w - lr * (normalization * acc / (np.sqrt(v) + eps) + wd * w), (acc, v)
  return _run_reference(step, lambda p: (np.zeros_like(p), np.zeros_like(p)))


def np_yogi(lr, b1=0.9, b2=0.999, eps=1e-3, init=1e-6):
  # TFF's Yogi: accumulator from 0, preconditioner from `init`, lr normalized.
  def step(w, g, st, t):
    a, s = st
    a = b1 * a + (1 - b1) * g
    s = s + (1 - b2) * np.sign(g**2 - s) * g**2
    normalized_lr = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return w - normalized_lr * a / (np.sqrt(s) + eps), (a, s)
  return _run_reference(step, lambda p: (np.zeros_like(p), np.full_like(p, init)))


def np_adagrad(lr, init=0.1, eps=1e-7):
  def step(w, g, s, t):
    s = s + g**2
    return w - lr * g / np.sqrt(s + eps), s
  return _run_reference(step, lambda p: np.full_like(p, init))


def np_rmsprop(lr, decay=0.9, eps=1e-7):
  # TFF's RMSprop: epsilon outside the square root.
  def step(w, g, s, t):
    s = decay * s + (1 - decay) * g**2
    return w - lr * g / (np.sqrt(s) + eps), s
  return _run_reference(step, np.zeros_like)


def np_keras_rmsprop(lr, rho=0.9, eps=1e-7, momentum=0.0, centered=False):
  # Keras's RMSprop: epsilon inside the square root, optional momentum/centering.
  def step(w, g, st, t):
    s, avg, mom = st
    s = rho * s + (1 - rho) * g**2
    avg = rho * avg + (1 - rho) * g
    denominator = (s - avg**2 if centered else s) + eps
    increment = lr * g / np.sqrt(denominator)
    mom = momentum * mom + increment
    return w - (mom if momentum else increment), (s, avg, mom)
  return _run_reference(step, lambda p: (np.zeros_like(p),) * 3)


def _run(optimizer, jit=False):
  """Three steps of `optimizer` at round 0; returns the parameters after each."""
  optimizer = optimizers.as_optimizer(optimizer)
  params = jax.tree.map(jnp.asarray, PARAMS)
  state = optimizer.init(params)

  def step(params, state, grads):
    updates, state = optimizer.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  out = []
  for grads in GRADS:
    params, state = step(params, state, jax.tree.map(jnp.float32, grads))
    out.append(params)
  return out


def _assert_steps_close(actual, expected, rtol=1e-5, atol=1e-6):
  assert len(actual) == len(expected)
  for t, (a, e) in enumerate(zip(actual, expected), start=1):
    for k in e:
      np.testing.assert_allclose(np.asarray(a[k]), e[k], rtol=rtol, atol=atol,
                                 err_msg=f"step {t}, leaf {k!r}")


# ---------------------------------------------------------------------------
# Builders.

BUILDER_CASES = {
    "sgd": (lambda: optimizers.build_sgdm(0.1), lambda: np_sgd(0.1)),
    "sgd-momentum-0": (lambda: optimizers.build_sgdm(0.1, momentum=0.0),
                       lambda: np_sgd(0.1)),
    "sgdm": (lambda: optimizers.build_sgdm(0.1, momentum=0.9),
             lambda: np_sgdm(0.1, 0.9)),
    "adam": (lambda: optimizers.build_adam(0.01), lambda: np_adam(0.01)),
    "adam-custom": (lambda: optimizers.build_adam(0.05, 0.8, 0.99, 1e-3),
                    lambda: np_adam(0.05, 0.8, 0.99, 1e-3)),
    "adamw": (lambda: optimizers.build_adamw(0.05, weight_decay=0.1),
              lambda: np_adamw(0.05, wd=0.1)),
    "yogi": (lambda: optimizers.build_yogi(0.01), lambda: np_yogi(0.01)),
    "yogi-custom": (lambda: optimizers.build_yogi(0.1, 0.5, 0.9, 1e-2, 0.1),
                    lambda: np_yogi(0.1, 0.5, 0.9, 1e-2, 0.1)),
    "adagrad": (lambda: optimizers.build_adagrad(0.1), lambda: np_adagrad(0.1)),
    "adagrad-custom": (lambda: optimizers.build_adagrad(0.5, 0.0, 1e-2),
                       lambda: np_adagrad(0.5, 0.0, 1e-2)),
    "rmsprop": (lambda: optimizers.build_rmsprop(0.01), lambda: np_rmsprop(0.01)),
    "rmsprop-custom": (lambda: optimizers.build_rmsprop(0.05, 0.5, 1e-2),
                       lambda: np_rmsprop(0.05, 0.5, 1e-2)),
}


@pytest.mark.parametrize("case", sorted(BUILDER_CASES))
def test_builder_matches_numpy_reference(case):
  build, reference = BUILDER_CASES[case]
  _assert_steps_close(_run(build()), reference())


@pytest.mark.parametrize("case", ["sgdm", "adam", "yogi"])
def test_builder_matches_reference_under_jit(case):
  build, reference = BUILDER_CASES[case]
  _assert_steps_close(_run(build(), jit=True), reference())


def test_defaults_follow_tff():
  def defaults(fn):
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()}

  assert defaults(optimizers.build_sgdm) == {"learning_rate": 0.01, "momentum": None,
                                             "nesterov": False}
  assert defaults(optimizers.build_adam) == {
      "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
  assert defaults(optimizers.build_yogi) == {
      "learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-3,
      "initial_preconditioner_value": 1e-6}
  assert defaults(optimizers.build_adagrad) == {
      "learning_rate": inspect.Parameter.empty,
      "initial_preconditioner_value": 0.1, "epsilon": 1e-7}
  assert defaults(optimizers.build_rmsprop) == {
      "learning_rate": 0.01, "decay": 0.9, "epsilon": 1e-7}


def test_names_and_repr():
  assert optimizers.build_sgdm().name == "sgd"
  assert optimizers.build_sgdm(momentum=0.9).name == "sgdm"
  assert [b().name for b in (optimizers.build_adam, optimizers.build_yogi,
                             optimizers.build_rmsprop)] == ["adam", "yogi", "rmsprop"]
  assert repr(optimizers.build_adam()) == "Optimizer(name='adam', learning_rate=0.001)"


# ---------------------------------------------------------------------------
# Learning-rate schedules over rounds.


def test_schedule_changes_learning_rate_per_round_under_jit():
  opt = optimizers.build_sgdm(
      optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.5))
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([0.5, 4.0])}
  traces = []

  @jax.jit
  def round_update(round_num, state):
    traces.append(round_num)
    updates, state = opt.at_round(round_num).update(grads, state, params)
    return updates, opt.learning_rate_at(round_num), state

  state = opt.init(params)
  for k in range(4):
    updates, lr, state = round_update(jnp.int32(k), state)
    expected_lr = 0.1 * 0.5**k
    np.testing.assert_allclose(lr, expected_lr, rtol=1e-6)
    np.testing.assert_allclose(updates["w"], -expected_lr * np.array([0.5, 4.0]),
                               rtol=1e-6)
  assert len(traces) == 1  # One program serves every round.


def test_learning_rate_at_is_float32_and_vmappable():
  opt = optimizers.build_adam(lambda r: 0.01 / (1.0 + r))
  lrs = jax.vmap(opt.learning_rate_at)(jnp.arange(4, dtype=jnp.int32))
  assert lrs.dtype == jnp.float32
  np.testing.assert_allclose(lrs, [0.01, 0.005, 0.01 / 3, 0.0025], rtol=1e-6)
  constant = optimizers.build_sgdm(0.25).learning_rate_at(jnp.int32(9))
  assert constant.dtype == jnp.float32 and constant.shape == ()
  assert float(constant) == 0.25
  # Differentiable through the schedule's parameters.
  slope = jax.grad(lambda s: optimizers.build_sgdm(lambda r: s * r)
                   .learning_rate_at(3))(0.5)
  np.testing.assert_allclose(slope, 3.0)


@pytest.mark.parametrize("case", ["sgd", "sgdm", "adam", "yogi", "adagrad", "rmsprop"])
def test_state_from_init_is_usable_at_any_round(case):
  opt = BUILDER_CASES[case][0]()
  params = jax.tree.map(jnp.asarray, PARAMS)
  grads = jax.tree.map(jnp.float32, GRADS[0])
  state = opt.init(params)
  updates, new_state = opt.at_round(5).update(grads, state, params)
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  jitted = jax.jit(lambda k, s: opt.at_round(k).update(grads, s, params))
  updates_traced, _ = jitted(jnp.int32(5), state)
  jax.tree.map(np.testing.assert_allclose, updates_traced, updates)


def test_schedule_must_be_traceable():
  with pytest.raises(TypeError, match="JAX-traceable"):
    optimizers.build_sgdm(lambda r: 0.1 if r < 5 else 0.01)


# ---------------------------------------------------------------------------
# as_optimizer.


def test_as_optimizer_accepts_optimizers_transformations_and_functions():
  opt = optimizers.build_sgdm(0.1)
  assert optimizers.as_optimizer(opt) is opt
  tx = optax.sgd(0.1, momentum=0.9)
  wrapped = optimizers.as_optimizer(tx)
  assert wrapped.learning_rate is None
  assert wrapped.at_round(7) is tx
  assert jnp.isnan(wrapped.learning_rate_at(jnp.int32(3)))
  _assert_steps_close(_run(tx), np_sgdm(0.1, 0.9))
  _assert_steps_close(_run(lambda: optimizers.build_adagrad(0.1)), np_adagrad(0.1))
  _assert_steps_close(_run(lambda: optax.sgd(0.1)), np_sgd(0.1))


def test_as_optimizer_rejects_other_values():
  with pytest.raises(TypeError, match=r"got 3 \(int\)") as info:
    optimizers.as_optimizer(3)
  assert "optax.GradientTransformation" in str(info.value)
  with pytest.raises(TypeError, match="needs arguments"):
    optimizers.as_optimizer(lambda lr: optax.sgd(lr))
  with pytest.raises(TypeError, match=r"returned 'sgd' \(str\)"):
    optimizers.as_optimizer(lambda: "sgd")


def test_builders_check_hyperparameters():
  with pytest.raises(ValueError, match=r"learning_rate must be in \[0, inf\), got -0.1"):
    optimizers.build_sgdm(-0.1)
  with pytest.raises(ValueError, match="beta_1"):
    optimizers.build_adam(beta_1=1.0)
  with pytest.raises(TypeError, match="learning_rate must be a float"):
    optimizers.build_rmsprop("fast")


def test_module_does_not_import_keras():
  code = ("import sys, fedjit.learning.optimizers; "
          "assert not any(m == 'keras' or m.startswith('keras.') for m in sys.modules)")
  subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# Keras optimizers.


@pytest.fixture(scope="module")
def keras():
  os.environ.setdefault("KERAS_BACKEND", "jax")
  keras = pytest.importorskip("keras")
  if keras.backend.backend() != "jax":
    pytest.skip("Keras is not on its JAX backend")
  return keras


def _run_keras_itself(keras, opt):
  """Three steps of Keras's own implementation, for an independent check."""
  keys = sorted(PARAMS)
  variables = [keras.Variable(PARAMS[k]) for k in keys]
  out = []
  for grads in GRADS:
    opt.apply([np.float32(grads[k]) for k in keys], variables)
    out.append({k: np.asarray(v.value) for k, v in zip(keys, variables)})
  return out


def test_keras_sgd_momentum_matches_reference(keras):
  converted = optimizers.as_optimizer(keras.optimizers.SGD(learning_rate=0.02,
                                                           momentum=0.9))
  assert converted.name == "sgdm" and converted.learning_rate == 0.02
  _assert_steps_close(_run(converted), np_sgdm(0.02, 0.9))


def test_keras_adam_matches_reference(keras):
  converted = optimizers.as_optimizer(keras.optimizers.Adam(learning_rate=0.01))
  assert converted.name == "adam"
  _assert_steps_close(_run(converted), np_adam(0.01))


def test_keras_function_and_class_are_called(keras):
  _assert_steps_close(_run(lambda: keras.optimizers.SGD(learning_rate=0.1)),
                      np_sgd(0.1))
  _assert_steps_close(_run(keras.optimizers.Adagrad), np_adagrad(0.001))


KERAS_CASES = {
    "sgd": lambda k: k.optimizers.SGD(0.1),
    "sgdm": lambda k: k.optimizers.SGD(0.02, momentum=0.9),
    "sgdm-nesterov": lambda k: k.optimizers.SGD(0.02, momentum=0.9, nesterov=True),
    "adam": lambda k: k.optimizers.Adam(0.01),
    "adamw": lambda k: k.optimizers.AdamW(0.01, weight_decay=0.1),
    "adagrad": lambda k: k.optimizers.Adagrad(0.1, initial_accumulator_value=0.2),
    "rmsprop": lambda k: k.optimizers.RMSprop(0.01),
    "rmsprop-momentum-centered": lambda k: k.optimizers.RMSprop(
        0.01, rho=0.8, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_converted_keras_optimizer_matches_keras_itself(keras, case):
  expected = _run_keras_itself(keras, KERAS_CASES[case](keras))
  _assert_steps_close(_run(KERAS_CASES[case](keras)), expected)


def test_keras_rmsprop_keeps_keras_epsilon_placement(keras):
  converted = optimizers.as_optimizer(keras.optimizers.RMSprop(0.05, epsilon=1e-2))
  _assert_steps_close(_run(converted), np_keras_rmsprop(0.05, eps=1e-2))
  nesterov = optimizers.as_optimizer(keras.optimizers.SGD(0.1, 0.5, nesterov=True))
  _assert_steps_close(_run(nesterov), np_sgdm(0.1, 0.5, nesterov=True))


def test_keras_unsupported_options_are_named(keras):
  with pytest.raises(TypeError,
                     match=r"Keras optimizer SGD with weight_decay=0\.01") as info:
    optimizers.as_optimizer(keras.optimizers.SGD(0.1, weight_decay=0.01))
  assert "optax.add_decayed_weights" in str(info.value)
  with pytest.raises(TypeError, match="clipnorm=1.0"):
    optimizers.as_optimizer(keras.optimizers.Adam(clipnorm=1.0))
  with pytest.raises(TypeError, match="amsgrad=True"):
    optimizers.as_optimizer(keras.optimizers.Adam(amsgrad=True))
  with pytest.raises(TypeError, match="Cannot convert Keras optimizer Nadam") as info:
    optimizers.as_optimizer(keras.optimizers.Nadam())
  assert "SGD" in str(info.value) and "build_adam" in str(info.value)
  schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
  with pytest.raises(TypeError, match="learning_rate="):
    optimizers.as_optimizer(keras.optimizers.SGD(schedule))


# ---------------------------------------------------------------------------
# TFF's API (initialize / next / get_hparams / set_hparams) and the optax path.


def _tff_adam_float32(steps, lr=0.1, b1=0.9, b2=0.999, eps=0.0, w=1.0, g=2.0):
  """TFF's adam.py operation for operation, in NumPy float32 (TF's arithmetic)."""
  f = np.float32
  w, g, a, p = f(w), f(g), f(0), f(0)
  b1, b2, lr, eps = f(b1), f(b2), f(lr), f(eps)
  out = []
  for t in range(1, steps + 1):
    normalized_lr = lr * np.sqrt(f(1.0) - np.power(b2, f(t))) / (f(1.0) - np.power(b1, f(t)))
    a = a + (g - a) * (f(1.0) - b1)
    p = p + (np.square(g) - p) * (f(1.0) - b2)
    w = w - normalized_lr * a / (np.sqrt(p) + eps)
    out.append(w)
  return out


def test_adam_matches_tff_float32_arithmetic_to_1e7():
  expected = _tff_adam_float32(4)
  opt = optimizers.build_adam(0.1, beta_1=0.9, beta_2=0.999, epsilon=0.0)
  state, w = opt.initialize(jax.ShapeDtypeStruct((1,), np.float32)), np.ones(1, np.float32)
  for t in range(4):
    state, w = opt.next(state, w, np.full(1, 2.0, np.float32))
    np.testing.assert_allclose(np.asarray(w)[0], expected[t], rtol=0, atol=1e-7)
  # The ideal values TFF's adam_test asserts (0.9, 0.8, 0.7, 0.6), within 1e-6.
  np.testing.assert_allclose(np.asarray(w), [0.6], rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", sorted(BUILDER_CASES))
def test_next_and_optax_update_agree_exactly(case):
  opt = BUILDER_CASES[case][0]()
  params = jax.tree.map(jnp.asarray, PARAMS)
  tff_state, tff_w = opt.initialize(params), params
  optax_state, optax_w = opt.init(params), params
  for grads in GRADS:
    grads = jax.tree.map(jnp.float32, grads)
    tff_state, tff_w = opt.next(tff_state, tff_w, grads)
    updates, optax_state = opt.update(grads, optax_state, optax_w)
    optax_w = optax.apply_updates(optax_w, updates)
  jax.tree.map(np.testing.assert_array_equal, tff_w, optax_w)
  assert list(tff_state) == list(optax_state)
  assert list(opt.get_hparams(tff_state)) == list(opt.get_hparams(optax_state))


def test_init_state_has_fixed_dtypes_and_set_hparams_keeps_them():
  opt = optimizers.build_adam(0.01)
  state = opt.init({"w": jnp.zeros(3)})
  assert state["learning_rate"].dtype == jnp.float32 and state["step"].dtype == jnp.int32
  new = opt.set_hparams(state, {"learning_rate": 0.5})
  assert new["learning_rate"].dtype == jnp.float32 and float(new["learning_rate"]) == 0.5
  assert state["learning_rate"] == np.float32(0.01)  # The input is not modified.
  assert jax.tree.structure(new) == jax.tree.structure(state)


def test_set_hparams_between_steps_changes_the_constant_learning_rate_under_jit():
  opt = optimizers.build_sgdm(0.1, momentum=0.5)
  params = {"w": jnp.array([1.0, -2.0])}
  grads = {"w": jnp.array([1.0, 2.0])}
  step = jax.jit(lambda k, s: opt.at_round(k).update(grads, s, params))
  state = opt.init(params)
  updates, state = step(jnp.int32(0), state)
  np.testing.assert_allclose(updates["w"], [-0.1, -0.2], rtol=1e-6)
  state = opt.set_hparams(state, {"learning_rate": 1.0, "momentum": 0.0})
  updates, state = step(jnp.int32(1), state)
  np.testing.assert_allclose(updates["w"], [-1.0, -2.0], rtol=1e-6)  # v = 0 * v + g


def test_schedule_overrides_the_state_learning_rate_and_is_recorded():
  opt = optimizers.build_sgdm(lambda r: 0.1 * (r + 1.0))
  params, grads = {"w": jnp.ones(2)}, {"w": jnp.ones(2)}
  state = opt.set_hparams(opt.init(params), {"learning_rate": 123.0})
  updates, state = opt.at_round(2).update(grads, state, params)
  np.testing.assert_allclose(updates["w"], [-0.3, -0.3], rtol=1e-6)
  np.testing.assert_allclose(opt.get_hparams(state)["learning_rate"], 0.3, rtol=1e-6)
  assert opt.initialize(params)["learning_rate"] == np.float32(0.1)  # schedule(0)


def test_set_hparams_rejects_unknown_names():
  opt = optimizers.build_sgdm(0.1)
  state = opt.initialize(jax.ShapeDtypeStruct((1,), np.float32))
  with pytest.raises(KeyError, match=r"no hyperparameter 'momentum'.*\['learning_rate'\]"):
    opt.set_hparams(state, {"momentum": 0.9})
  with pytest.raises(ValueError, match="expects a state with entries"):
    opt.get_hparams(optimizers.build_adam().initialize(jax.ShapeDtypeStruct((1,), np.float32)))


def test_mismatched_structures_raise_value_error_with_both_types():
  opt = optimizers.build_adam(0.1)
  state = opt.initialize([jax.ShapeDtypeStruct((2,), np.float32)])
  with pytest.raises(ValueError, match=r"weights are \[float32\[2\]\], gradients are "
                                       r"\(float32\[2\],\)"):
    opt.next(state, [np.zeros(2, np.float32)], (np.zeros(2, np.float32),))
  with pytest.raises(ValueError, match=r"accumulator does not match.*float32\[3\]"):
    opt.next(state, [np.zeros(3, np.float32)], [np.zeros(3, np.float32)])
  with pytest.raises(ValueError, match="initialize"):
    opt.next(state, [np.zeros(3, np.float32)], [np.zeros(3, np.float32)])
  # The optax path checks too (no silent broadcasting of a [1] gradient).
  params = [jnp.zeros(2)]
  with pytest.raises(ValueError, match=r"gradients must match the parameters"):
    opt.update([jnp.zeros(1)], opt.init(params), params)
  with pytest.raises(ValueError, match=r"accumulator does not match the gradients"):
    opt.update([jnp.zeros(1)], opt.init(params))


def test_yogi_accepts_zero_initial_preconditioner_and_sgdm_nesterov_needs_momentum():
  opt = optimizers.build_yogi(0.1, initial_preconditioner_value=0.0)
  state = opt.initialize(jax.ShapeDtypeStruct((1,), np.float32))
  np.testing.assert_array_equal(state["preconditioner"], [0.0])
  with pytest.raises(ValueError, match="Nesterov"):
    optimizers.build_sgdm(0.1, momentum=0.0, nesterov=True)
  with pytest.raises(ValueError, match="initial_preconditioner_value"):
    optimizers.build_yogi(0.1, initial_preconditioner_value=-1.0)
  _assert_steps_close(_run(optimizers.build_sgdm(0.1, 0.9, nesterov=True)),
                      np_sgdm(0.1, 0.9, nesterov=True))


class _HalfStep(optimizers.Optimizer):
  """A TFF-style custom optimizer: only initialize and next."""

  def initialize(self, specs):
    return {"learning_rate": 0.5}

  def next(self, state, weights, gradients):
    lr = state["learning_rate"]
    return state, jax.tree.map(lambda w, g: w - lr * g, weights, gradients)


def test_tff_style_subclass_gets_the_optax_path():
  opt = optimizers.as_optimizer(_HalfStep())
  params = {"w": jnp.array([1.0, 2.0])}
  state = opt.init(params)
  assert state["learning_rate"].dtype == jnp.float32
  updates, state = jax.jit(opt.at_round(3).update)({"w": jnp.array([2.0, 4.0])}, state, params)
  np.testing.assert_allclose(updates["w"], [-1.0, -2.0])
  with pytest.raises(TypeError, match="needs `params`"):
    opt.update({"w": jnp.ones(2)}, state)
  with pytest.raises(TypeError, match="subclass that defines initialize"):
    optimizers.Optimizer()


def test_wrapped_optax_and_keras_optimizers_have_tff_api():
  # An optax transformation: TFF's API over its own state, no hparams...
  opt = optimizers.as_optimizer(optax.sgd(0.5))
  state = opt.initialize({"w": jax.ShapeDtypeStruct((2,), np.float32)})
  state, w = opt.next(state, {"w": jnp.ones(2)}, {"w": jnp.ones(2)})
  np.testing.assert_allclose(w["w"], [0.5, 0.5])
  assert opt.get_hparams(state) == collections.OrderedDict()
  with pytest.raises(KeyError, match="learning_rate"):
    opt.set_hparams(state, {"learning_rate": 0.1})
  # ...unless built with optax.inject_hyperparams, whose hyperparameters it exposes.
  opt = optimizers.as_optimizer(optax.inject_hyperparams(optax.sgd)(learning_rate=0.5))
  state = opt.initialize({"w": jax.ShapeDtypeStruct((2,), np.float32)})
  state = opt.set_hparams(state, {"learning_rate": 0.25})
  _, w = opt.next(state, {"w": jnp.ones(2)}, {"w": jnp.ones(2)})
  np.testing.assert_allclose(w["w"], [0.75, 0.75])
  # Optimizer(make, lr): the learning rate lives in the state.
  opt = optimizers.Optimizer(optax.sgd, 0.1, "sgd")
  state = opt.set_hparams(opt.initialize(jax.ShapeDtypeStruct((1,), np.float32)),
                          {"learning_rate": 1.0})
  _, w = opt.next(state, np.ones(1, np.float32), np.ones(1, np.float32))
  np.testing.assert_allclose(w, [0.0])


def test_keras_conversion_gives_tff_builders(keras):
  converted = optimizers.as_optimizer(keras.optimizers.SGD(0.1, momentum=0.5, nesterov=True))
  assert converted.nesterov and converted.momentum == 0.5
  rms = optimizers.as_optimizer(keras.optimizers.RMSprop(0.01))
  state = rms.initialize(jax.ShapeDtypeStruct((1,), np.float32))
  assert list(rms.get_hparams(state)) == ["learning_rate"]


def test_set_hparams_between_rounds_changes_the_server_learning_rate():
  server = optimizers.build_sgdm(1.0, momentum=0.5)
  with fedjit.backend("reference"):
    trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
        softmax3_model(), optimizers.build_sgdm(0.1), server_optimizer_fn=server)
    data = batched_clients([4, 6])
    first = trainer.next(trainer.initialize(), data).state
    opt_state, round_num = first.finalizer
    assert server.get_hparams(opt_state) == collections.OrderedDict(
        learning_rate=1.0, momentum=0.5)
    frozen = first._replace(finalizer=(server.set_hparams(opt_state, {"learning_rate": 0.0}),
                                       round_num))
    second = trainer.next(frozen, data).state
    moved = trainer.next(first, data).state
  jax.tree.map(np.testing.assert_array_equal, second.global_model_weights.trainable,
               first.global_model_weights.trainable)
  assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(
      jax.tree.leaves(moved.global_model_weights.trainable),
      jax.tree.leaves(first.global_model_weights.trainable)))


def test_schedule_learning_rate_steps_under_jit_and_as_server_optimizer():
  opt = optimizers.schedule_learning_rate(optimizers.build_sgdm(1.0, momentum=0.0),
                                          lambda i: 0.1 * 0.5 ** i.astype(jnp.float32))
  params = {"w": jnp.ones(2)}
  grads = {"w": jnp.ones(2)}

  def body(carry, _):
    w, s = carry
    updates, s = opt.update(grads, s, w)
    return (optax.apply_updates(w, updates), s), s["optimizer"]["learning_rate"]

  (w, state), lrs = jax.lax.scan(body, (params, opt.init(params)), length=3)
  np.testing.assert_allclose(lrs, [0.05, 0.025, 0.0125], rtol=1e-6)  # after steps 1..3
  np.testing.assert_allclose(w["w"], 1.0 - (0.1 + 0.05 + 0.025), rtol=1e-6)
  assert int(state["round_num"]) == 3
  with fedjit.backend("vectorized"):
    trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
        softmax3_model(), optimizers.build_sgdm(0.1), server_optimizer_fn=opt)
    state = trainer.initialize()
    for _ in range(2):
      state = trainer.next(state, batched_clients([4, 6])).state
  assert int(state.finalizer[0]["round_num"]) == 2


def test_adamw_dense_version_of_tffs_indexed_slices_case():
  # TFF's adamw_test with the IndexedSlices gradient as its dense array: with
  # beta_1 = beta_2 = 0, w = 1 - 0.5 * (g / (|g| + 1e-7) + 0.004 * 1).
  opt = optimizers.build_adamw(0.5, beta_1=0.0, beta_2=0.0)
  state = opt.initialize(jax.ShapeDtypeStruct((4, 2), np.float32))
  grads = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
  _, w = opt.next(state, np.ones((4, 2), np.float32), grads)
  np.testing.assert_allclose(w, [[0.498, 0.498], [0.998, 0.998], [0.498, 0.498],
                                 [0.998, 0.998]], rtol=1e-6, atol=1e-6)
  with pytest.raises(TypeError, match="needs? the parameters|depends on the parameters"):
    opt.update(grads, opt.init(np.ones((4, 2), np.float32)))
