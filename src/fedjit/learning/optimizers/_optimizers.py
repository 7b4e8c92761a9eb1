"""Optimizers: optax transformations whose learning rate may follow a schedule.

TFF's `tff.learning.optimizers` are stateless objects with `initialize` and
`next`. Here an optimizer is an optax `GradientTransformation` plus a learning
rate that may depend on the federated round, so a round can build the
transformation for its own learning rate inside a jitted program while the
optimizer state keeps one structure across rounds.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "Optimizer",
    "as_optimizer",
    "build_adagrad",
    "build_adam",
    "build_rmsprop",
    "build_sgdm",
    "build_yogi",
]

Schedule = Callable[[Any], Any]
"""A traceable function `round_num -> learning rate`, e.g. an optax schedule."""

LearningRate = Union[float, Schedule]
"""A constant learning rate or a `Schedule`."""

_ACCEPTED = ("a fedjit.learning.optimizers.Optimizer (e.g. build_sgdm(0.1)), an "
             "optax.GradientTransformation (e.g. optax.sgd(0.1)), a Keras optimizer "
             "instance (SGD, Adam, Adagrad or RMSprop), or a no-argument function "
             "returning one of these (e.g. lambda: build_adam(1e-3))")


class Optimizer:
  """An optax optimizer whose learning rate may follow a per-round schedule.

  `make(learning_rate)` builds the optax transformation for one learning rate;
  `learning_rate` is a constant or a traceable function of the round number.
  `at_round(k)` is the transformation for round `k`, and `k` may be a traced
  int32, so one jitted round program serves every round. The state structure
  does not depend on the learning rate: the state from `init` can be updated by
  `at_round(k)` for any `k`.

  Attributes:
    name: a short name such as `"sgdm"` or `"adam"`.
    learning_rate: the constant, the schedule, or `None` for a wrapped optax
      transformation that fixes its own step size.

  Example:
    >>> opt = build_sgdm(optax.exponential_decay(0.1, 1, 0.5))
    >>> state = opt.init(params)
    >>> updates, state = opt.at_round(3).update(grads, state, params)
    >>> params = optax.apply_updates(params, updates)
  """

  def __init__(self, make: Callable[[Any], optax.GradientTransformation],
               learning_rate: LearningRate | None, name: str):
    if not callable(make):
      raise TypeError(f"Optimizer expects `make` to be a function learning_rate -> "
                      f"optax.GradientTransformation, got {make!r}.")
    if learning_rate is not None and not callable(learning_rate):
      _check_range("learning_rate", learning_rate, 0.0, math.inf)
    elif callable(learning_rate):
      _check_schedule(learning_rate)
    self._make = make
    self.learning_rate = learning_rate
    self.name = name

  def learning_rate_at(self, round_num: Any) -> jax.Array:
    """The learning rate for round `round_num`, a float32 scalar.

    Traceable: `round_num` may be a traced int32 under `jax.jit` or `jax.vmap`.
    For a wrapped optax transformation (`learning_rate is None`) the rate is
    unknown and this returns NaN.

    Args:
      round_num: the round number (a Python int or a scalar int array).

    Returns:
      A float32 scalar array.

    Example:
      >>> build_sgdm(0.1).learning_rate_at(7)
      Array(0.1, dtype=float32)
    """
    lr = self.learning_rate
    if lr is None:
      return jnp.full((), jnp.nan, jnp.float32)
    value = jnp.asarray(lr(round_num) if callable(lr) else lr, jnp.float32)
    if value.shape != ():
      raise ValueError(f"The learning-rate schedule of optimizer {self.name!r} must "
                       f"return a scalar; for round {round_num} it returned shape "
                       f"{value.shape}.")
    return value

  def transformation(self, learning_rate: Any) -> optax.GradientTransformation:
    """The optax transformation that uses `learning_rate` (which may be traced).

    A wrapped optax transformation (`self.learning_rate is None`) is returned
    unchanged.

    Args:
      learning_rate: a scalar, e.g. from `learning_rate_at`.

    Returns:
      An `optax.GradientTransformation`.

    Example:
      >>> tx = build_adam().transformation(jnp.float32(1e-2))
    """
    return self._make(learning_rate)

  def at_round(self, round_num: Any) -> optax.GradientTransformation:
    """The transformation for round `round_num`: `transformation(learning_rate_at(k))`.

    Args:
      round_num: the round number (a Python int or a possibly traced int32).

    Returns:
      An `optax.GradientTransformation`.

    Example:
      >>> updates, state = opt.at_round(round_num).update(grads, state, params)
    """
    if self.learning_rate is None:
      return self._make(None)
    return self.transformation(self.learning_rate_at(round_num))

  def init(self, params: Any) -> optax.OptState:
    """The optimizer state for `params`, usable with `at_round(k)` for any `k`.

    Args:
      params: a pytree of arrays.

    Returns:
      An optax optimizer state.

    Example:
      >>> state = build_sgdm(0.1, momentum=0.9).init({"w": jnp.zeros(3)})
    """
    return self.at_round(0).init(params)

  def update(self, grads: Any, state: optax.OptState,
             params: Any = None) -> tuple[Any, optax.OptState]:
    """One optax update at the round-0 learning rate (plain optax-style use).

    Args:
      grads: a pytree of gradients matching `params`.
      state: the state from `init` or a previous `update`.
      params: the current parameters (needed by some transformations).

    Returns:
      `(updates, new_state)`; apply with `optax.apply_updates(params, updates)`.

    Example:
      >>> updates, state = opt.update(grads, state, params)
    """
    return self.at_round(0).update(grads, state, params)

  def __repr__(self) -> str:
    lr = self.learning_rate
    if lr is None:
      lr_text = "fixed by the wrapped transformation"
    elif callable(lr):
      lr_text = f"<schedule {getattr(lr, '__qualname__', type(lr).__qualname__)}>"
    else:
      lr_text = repr(lr)
    return f"Optimizer(name={self.name!r}, learning_rate={lr_text})"


# ---------------------------------------------------------------------------
# Builders (TFF names and defaults).


def build_sgdm(learning_rate: LearningRate = 0.01,
               momentum: float | None = None) -> Optimizer:
  """Gradient descent, with momentum if `momentum` is given (TFF's `build_sgdm`).

  Without momentum: `w = w - lr * g`. With momentum `m` in [0, 1]:

      v = m * v + g
      w = w - lr * v

  (`optax.sgd`; `momentum=None` or `0` gives plain SGD with no state.)

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    momentum: `None`, or a float in [0, 1].

  Returns:
    An `Optimizer` named `"sgd"` or `"sgdm"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> opt = build_sgdm(learning_rate=0.1, momentum=0.9)
    >>> state = opt.init(params)
  """
  if momentum:
    _check_range("momentum", momentum, 0.0, 1.0, hi_inclusive=True)
    return Optimizer(lambda lr: optax.sgd(lr, momentum=momentum), learning_rate,
                     "sgdm")
  if momentum is not None:
    _check_range("momentum", momentum, 0.0, 1.0, hi_inclusive=True)
  return Optimizer(optax.sgd, learning_rate, "sgd")


def build_adam(learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-7) -> Optimizer:
  """Adam, exactly as TFF's `tff.learning.optimizers.build_adam` computes it.

  At step `t` (counting from 1), with accumulator `m` and preconditioner `v`
  starting at zero:

      m = m + (g - m) * (1 - beta_1)
      v = v + (g**2 - v) * (1 - beta_2)
      normalized_lr = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
      w = w - normalized_lr * m / (sqrt(v) + epsilon)

  This is TFF's (and Keras's) formula, which adds `epsilon` to the
  uncorrected `sqrt(v)`; `optax.adam` adds it after bias correction instead,
  and the two differ while `sqrt(v)` is within a few orders of magnitude of
  `epsilon`. Pass `optax.adam(...)` itself to use optax's variant.

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    beta_1: decay of the first moment, in [0, 1).
    beta_2: decay of the second moment, in [0, 1).
    epsilon: a small non-negative float for numerical stability.

  Returns:
    An `Optimizer` named `"adam"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> opt = build_adam(learning_rate=1e-3)
  """
  _check_range("beta_1", beta_1, 0.0, 1.0)
  _check_range("beta_2", beta_2, 0.0, 1.0)
  _check_range("epsilon", epsilon, 0.0, math.inf)
  return Optimizer(lambda lr: _tff_adam(lr, beta_1, beta_2, epsilon), learning_rate, "adam")


def build_yogi(learning_rate: LearningRate = 0.01, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-3,
               initial_preconditioner_value: float = 1e-6) -> Optimizer:
  """Yogi (Zaheer et al. 2018), exactly as TFF's `build_yogi` computes it.

  At step `t` (counting from 1), with accumulator `a = 0` and preconditioner
  `s = initial_preconditioner_value` at the start:

      a = beta_1 * a + (1 - beta_1) * g
      s = s + (1 - beta_2) * sign(g**2 - s) * g**2
      normalized_lr = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
      w = w - normalized_lr * a / (sqrt(s) + epsilon)

  This is TFF's variant, not `optax.yogi` (which starts the first moment at
  `initial_preconditioner_value` and adds `epsilon` after bias correction);
  TFF's tuned FedYogi hyperparameters therefore carry over unchanged. Typically
  use about 10x the learning rate used for Adam.

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    beta_1: decay of the accumulator, in [0, 1).
    beta_2: decay of the preconditioner, in [0, 1).
    epsilon: a non-negative constant trading off adaptivity and noise.
    initial_preconditioner_value: the starting preconditioner, > 0.

  Returns:
    An `Optimizer` named `"yogi"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> server_optimizer = build_yogi(learning_rate=0.01)
  """
  _check_range("beta_1", beta_1, 0.0, 1.0)
  _check_range("beta_2", beta_2, 0.0, 1.0)
  _check_range("epsilon", epsilon, 0.0, math.inf)
  _check_range("initial_preconditioner_value", initial_preconditioner_value,
               0.0, math.inf, lo_inclusive=False)

  def make(lr):
    return optax.chain(
        _scale_by_yogi(beta_1, beta_2, epsilon, initial_preconditioner_value),
        optax.scale_by_learning_rate(lr))

  return Optimizer(make, learning_rate, "yogi")


def build_adagrad(learning_rate: LearningRate,
                  initial_preconditioner_value: float = 0.1,
                  epsilon: float = 1e-7) -> Optimizer:
  """Adagrad (Duchi et al. 2011), as TFF's `build_adagrad` and `optax.adagrad`.

  With the preconditioner `s` starting at `initial_preconditioner_value`:

      s = s + g**2
      w = w - lr * g / sqrt(s + epsilon)

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    initial_preconditioner_value: the starting preconditioner, >= 0.
    epsilon: a small non-negative float for numerical stability.

  Returns:
    An `Optimizer` named `"adagrad"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> opt = build_adagrad(learning_rate=0.1)
  """
  _check_range("initial_preconditioner_value", initial_preconditioner_value,
               0.0, math.inf)
  _check_range("epsilon", epsilon, 0.0, math.inf)
  return Optimizer(
      lambda lr: optax.adagrad(
          lr, initial_accumulator_value=initial_preconditioner_value, eps=epsilon),
      learning_rate, "adagrad")


def build_rmsprop(learning_rate: LearningRate = 0.01, decay: float = 0.9,
                  epsilon: float = 1e-7) -> Optimizer:
  """RMSprop (Tieleman and Hinton 2012), as TFF's `build_rmsprop` computes it.

  With the preconditioner `s` starting at zero:

      s = decay * s + (1 - decay) * g**2
      w = w - lr * g / (sqrt(s) + epsilon)

  (`optax.rmsprop(..., eps_in_sqrt=False)`; note that Keras adds `epsilon`
  inside the square root, which `as_optimizer` preserves for Keras RMSprop.)

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    decay: decay of the preconditioner, in [0, 1).
    epsilon: a small non-negative float for numerical stability.

  Returns:
    An `Optimizer` named `"rmsprop"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> opt = build_rmsprop(learning_rate=0.01, decay=0.9)
  """
  _check_range("decay", decay, 0.0, 1.0)
  _check_range("epsilon", epsilon, 0.0, math.inf)
  return Optimizer(
      lambda lr: optax.rmsprop(lr, decay=decay, eps=epsilon, eps_in_sqrt=False),
      learning_rate, "rmsprop")


# ---------------------------------------------------------------------------
# Conversion.


def as_optimizer(obj: Any) -> Optimizer:
  """Converts what users pass as an optimizer into an `Optimizer`.

  Accepts an `Optimizer` (returned as is); an `optax.GradientTransformation`
  (wrapped with `learning_rate=None`: `at_round(k)` returns it unchanged and
  `learning_rate_at` is NaN); a Keras optimizer instance (`SGD`, `Adam`,
  `Adagrad`, `RMSprop`), converted from its `get_config()` to the equivalent
  optax update; or a no-argument function returning any of these (TFF's
  `client_optimizer_fn=lambda: ...` style).

  Args:
    obj: the optimizer, transformation, Keras optimizer or function.

  Returns:
    An `Optimizer`.

  Raises:
    TypeError: for anything else, or for a Keras optimizer (or option, such
      as `weight_decay`) that has no conversion.

  Example:
    >>> as_optimizer(lambda: keras.optimizers.SGD(learning_rate=0.02)).name
    'sgd'
  """
  return _as_optimizer(obj, allow_function=True)


def _as_optimizer(obj: Any, allow_function: bool) -> Optimizer:
  if isinstance(obj, Optimizer):
    return obj
  if isinstance(obj, optax.GradientTransformation):
    return Optimizer(lambda _: obj, None, "optax")
  if _is_keras_optimizer(obj) and not isinstance(obj, type):
    return _from_keras(obj)
  if callable(obj) and allow_function:
    try:
      inspect.signature(obj).bind()
    except TypeError:
      raise TypeError(
          f"as_optimizer got the function {_describe(obj)}, which needs arguments. "
          f"It accepts {_ACCEPTED}. (A learning-rate schedule round_num -> lr goes "
          f"into a builder: build_sgdm(learning_rate=optax.exponential_decay(...)).)"
      ) from None
    except ValueError:
      pass  # No signature available (some builtins): just call it.
    made = obj()
    try:
      return _as_optimizer(made, allow_function=False)
    except TypeError as e:
      raise TypeError(f"as_optimizer called the function {_describe(obj)}, which "
                      f"returned {_describe(made)}; {e}") from None
  raise TypeError(f"as_optimizer expects {_ACCEPTED}; got {_describe(obj)}.")


_KERAS_PREFIXES = ("keras", "tf_keras")
# Keras options that change the update, and their "off" values.
_KERAS_COMMON_OFF = {
    "weight_decay": None, "clipnorm": None, "global_clipnorm": None,
    "clipvalue": None, "use_ema": False, "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}
# Keys that do not change the update (or only matter with an option above).
_KERAS_IGNORED = {"name", "ema_momentum", "ema_overwrite_frequency",
                  "jit_compile", "is_legacy_optimizer"}
_KERAS_HINTS = {
    "weight_decay": "optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr)) "
                    "or optax.adamw(lr, weight_decay=wd)",
    "clipnorm": "optax.chain(optax.clip_by_global_norm(max_norm), optax.sgd(lr))",
    "global_clipnorm": "optax.chain(optax.clip_by_global_norm(max_norm), "
                       "optax.sgd(lr))",
    "clipvalue": "optax.chain(optax.clip(max_delta), optax.sgd(lr))",
    "use_ema": "optax.ema is the optax building block; keep an average of the "
               "weights outside the optimizer",
    "amsgrad": "optax.amsgrad(lr) (optax's AMSGrad variant)",
}
_KERAS_SUPPORTED = ("fedjit converts Keras SGD (learning_rate, momentum, nesterov), "
                    "Adam (learning_rate, beta_1, beta_2, epsilon), Adagrad "
                    "(learning_rate, initial_accumulator_value, epsilon) and RMSprop "
                    "(learning_rate, rho, momentum, epsilon, centered) with a constant "
                    "learning rate")


def _is_keras_optimizer(obj: Any) -> bool:
  cls = obj if isinstance(obj, type) else type(obj)
  return any(c.__module__.startswith(_KERAS_PREFIXES) and
             c.__name__ in ("Optimizer", "BaseOptimizer", "OptimizerV2")
             for c in cls.__mro__)


def _from_keras(opt: Any) -> Optimizer:
  """Converts a Keras SGD/Adam/Adagrad/RMSprop instance by its `get_config()`."""
  cls = type(opt)
  kind = cls.__name__
  where = f"Keras optimizer {kind}"

  def unsupported(what: str, hint: str | None = None) -> TypeError:
    instead = (f"Build the update with optax and pass it to as_optimizer, e.g. {hint}"
               if hint else
               "Build the update with optax and pass the transformation to "
               "as_optimizer, or use a fedjit builder such as build_sgdm")
    return TypeError(f"Cannot convert {where} with {what}: {_KERAS_SUPPORTED}. "
                     f"{instead}.")

  supported = kind in ("SGD", "Adam", "Adagrad", "RMSprop")
  if not supported or not cls.__module__.startswith(_KERAS_PREFIXES):
    raise TypeError(f"Cannot convert {where} (class {cls.__module__}.{kind}): "
                    f"{_KERAS_SUPPORTED}. Use a fedjit builder (build_sgdm, "
                    f"build_adam, build_yogi, build_adagrad, build_rmsprop) or an "
                    f"optax transformation instead.")
  config = dict(opt.get_config())
  lr = config.pop("learning_rate", None)
  if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
    raise unsupported(
        f"learning_rate={lr!r}",
        "build_sgdm(learning_rate=optax.exponential_decay(...)) -- fedjit schedules "
        "are functions of the round number, not of the Keras step")
  # The Keras config holds the float32 variable's value; recover the short decimal.
  lr = float(str(np.float32(lr)))
  for key, off in _KERAS_COMMON_OFF.items():
    value = config.pop(key, off)
    if value != off and not (off is None and value == 0):
      raise unsupported(f"{key}={value!r}", _KERAS_HINTS.get(key))
  for key in _KERAS_IGNORED:
    config.pop(key, None)

  def take(key: str, default: Any) -> Any:
    return config.pop(key, default)

  if kind == "SGD":
    momentum, nesterov = float(take("momentum", 0.0)), bool(take("nesterov", False))
    result = build_sgdm(lr, momentum or None)
    if nesterov and momentum:
      result = Optimizer(lambda r: optax.sgd(r, momentum=momentum, nesterov=True), lr,
                         "sgdm_nesterov")
  elif kind == "Adam":
    if take("amsgrad", False):
      raise unsupported("amsgrad=True", _KERAS_HINTS["amsgrad"])
    b1, b2 = float(take("beta_1", 0.9)), float(take("beta_2", 0.999))
    eps = float(take("epsilon", 1e-7))
    _check_range("beta_1", b1, 0.0, 1.0)
    _check_range("beta_2", b2, 0.0, 1.0)
    result = Optimizer(lambda r: _tff_adam(r, b1, b2, eps), lr, "adam")
  elif kind == "Adagrad":
    result = build_adagrad(lr, float(take("initial_accumulator_value", 0.1)),
                           float(take("epsilon", 1e-7)))
  else:  # RMSprop: Keras adds epsilon inside the square root, unlike TFF.
    rho, eps = float(take("rho", 0.9)), float(take("epsilon", 1e-7))
    momentum, centered = float(take("momentum", 0.0)), bool(take("centered", False))
    _check_range("rho", rho, 0.0, 1.0)
    _check_range("momentum", momentum, 0.0, 1.0, hi_inclusive=True)
    result = Optimizer(
        lambda r: optax.rmsprop(r, decay=rho, eps=eps, eps_in_sqrt=True,
                                centered=centered, momentum=momentum or None),
        lr, "rmsprop")
  for key, value in config.items():  # Options this Keras version added.
    if value not in (None, False, 0):
      raise unsupported(f"{key}={value!r}")
  return result


class _AdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def _tff_adam(learning_rate: Any, b1: float, b2: float, eps: float
              ) -> optax.GradientTransformation:
  """TFF's (and Keras's) Adam, operation for operation: with
  `α = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)`, `m += (g - m)(1-β₁)`, `v += (g² - v)(1-β₂)`,
  update `-(m·α) / (√v + ε)`.

  TFF and Keras add ε to the uncorrected `√v` (optax adds it after bias
  correction), which matters while `√v` is near ε.
  """
  def init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return _AdamState(jnp.zeros((), jnp.int32), zeros, zeros)

  def update(grads, state, params=None):
    del params
    mu = jax.tree_util.tree_map(lambda m, g: m + (g - m) * (1 - b1), state.mu, grads)
    nu = jax.tree_util.tree_map(lambda v, g: v + (jnp.square(g) - v) * (1 - b2), state.nu, grads)
    t = (state.count + 1).astype(jnp.float32)
    alpha = learning_rate * jnp.sqrt(1 - jnp.power(jnp.float32(b2), t)) / (
        1 - jnp.power(jnp.float32(b1), t))
    out = jax.tree_util.tree_map(lambda m, v: -(m * alpha) / (jnp.sqrt(v) + eps), mu, nu)
    return out, _AdamState(state.count + 1, mu, nu)

  return optax.GradientTransformation(init, update)


# ---------------------------------------------------------------------------
# Helpers.


class _YogiState(NamedTuple):
  """State of `_scale_by_yogi`, named as in TFF."""
  count: jax.Array
  accumulator: Any
  preconditioner: Any


def _scale_by_yogi(beta_1: float, beta_2: float, epsilon: float,
                   initial_preconditioner_value: float) -> optax.GradientTransformation:
  """TFF's Yogi direction `normalized(a) / (sqrt(s) + eps)`; see `build_yogi`."""

  def init_fn(params):
    return _YogiState(
        count=jnp.zeros([], jnp.int32),
        accumulator=jax.tree.map(jnp.zeros_like, params),
        preconditioner=jax.tree.map(
            lambda p: jnp.full_like(p, initial_preconditioner_value), params))

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_int32_increment(state.count)
    accumulator = jax.tree.map(lambda a, g: beta_1 * a + (1 - beta_1) * g,
                               state.accumulator, updates)
    preconditioner = jax.tree.map(
        lambda s, g: s + (1 - beta_2) * jnp.sign(g * g - s) * (g * g),
        state.preconditioner, updates)
    t = count.astype(jnp.float32)
    correction = jnp.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    direction = jax.tree.map(
        lambda a, s: (correction * a / (jnp.sqrt(s) + epsilon)).astype(a.dtype),
        accumulator, preconditioner)
    return direction, _YogiState(count, accumulator, preconditioner)

  return optax.GradientTransformation(init_fn, update_fn)


def _check_range(name: str, value: Any, lo: float, hi: float, *,
                 lo_inclusive: bool = True, hi_inclusive: bool = False) -> None:
  """Raises ValueError if a concrete hyperparameter is outside its range."""
  if isinstance(value, jax.core.Tracer):
    return  # Built inside a traced function: cannot check.
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"{name} must be a float, got {_describe(value)}.") from None
  if isinstance(value, bool) or math.isnan(x):
    raise TypeError(f"{name} must be a float, got {_describe(value)}.")
  above = x > lo if not lo_inclusive else x >= lo
  below = x <= hi if hi_inclusive else x < hi
  if not (above and below):
    interval = (("[" if lo_inclusive else "(") + f"{lo:g}, {hi:g}" +
                ("]" if hi_inclusive else ")"))
    raise ValueError(f"{name} must be in {interval}, got {value!r}.")


def _check_schedule(schedule: Schedule) -> None:
  """Checks at build time that a schedule traces on an int32 round number."""
  try:
    out = jax.eval_shape(schedule, jax.ShapeDtypeStruct((), jnp.int32))
  except Exception as e:  # noqa: BLE001  (re-raised with context)
    raise TypeError(
        f"The learning-rate schedule {_describe(schedule)} must be a JAX-traceable "
        f"function of the round number (an int32 scalar), such as "
        f"optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5) or "
        f"lambda r: 0.1 * 0.99**r; use jnp.where instead of Python `if` on the "
        f"round. Tracing it failed with {type(e).__name__}: {e}") from None
  leaves = jax.tree.leaves(out)
  if len(leaves) != 1 or leaves[0].shape != ():
    raise TypeError(f"The learning-rate schedule {_describe(schedule)} must return a "
                    f"scalar, but returns {out}.")


def _describe(obj: Any) -> str:
  text = repr(obj)
  if len(text) > 80:
    text = text[:77] + "..."
  return f"{text} ({type(obj).__module__}.{type(obj).__qualname__})".replace(
      "(builtins.", "(")
