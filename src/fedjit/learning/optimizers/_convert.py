"""Conversion of what users pass as an optimizer: `as_optimizer`.

Accepts fedjit's `Optimizer`s, optax transformations, Keras optimizers (SGD,
Adam, Adagrad, RMSprop, converted by their `get_config()`) and TFF's
no-argument `optimizer_fn` style.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fedjit.learning.optimizers._builders import (build_adagrad, build_adam, build_adamw,
                                                  build_sgdm)
from fedjit.learning.optimizers._optimizer import Optimizer, _describe, check_range

__all__ = ["as_optimizer"]

_ACCEPTED = ("a fedjit.learning.optimizers.Optimizer (e.g. build_sgdm(0.1)), an "
             "optax.GradientTransformation (e.g. optax.sgd(0.1)), a Keras optimizer "
             "instance (SGD, Adam, Adagrad or RMSprop), or a no-argument function "
             "returning one of these (e.g. lambda: build_adam(1e-3))")


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
                    "Adam (learning_rate, beta_1, beta_2, epsilon), AdamW (and "
                    "weight_decay), Adagrad "
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

  supported = kind in ("SGD", "Adam", "AdamW", "Adagrad", "RMSprop")
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
  weight_decay = config.pop("weight_decay", None) if kind == "AdamW" else None
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
    result = build_sgdm(lr, momentum or None, nesterov=nesterov and bool(momentum))
  elif kind in ("Adam", "AdamW"):
    if take("amsgrad", False):
      raise unsupported("amsgrad=True", _KERAS_HINTS["amsgrad"])
    b1, b2 = float(take("beta_1", 0.9)), float(take("beta_2", 0.999))
    eps = float(take("epsilon", 1e-7))
    if kind == "Adam":  # Keras's own arithmetic, so a round equals Keras's fits
      check_range("beta_1", b1, 0.0, 1.0)
      check_range("beta_2", b2, 0.0, 1.0)
      result = Optimizer(lambda r: _keras_adam(r, b1, b2, eps), lr, "adam")
    else:
      result = build_adamw(lr, b1, b2, eps, float(weight_decay or 0.0))
  elif kind == "Adagrad":
    result = build_adagrad(lr, float(take("initial_accumulator_value", 0.1)),
                           float(take("epsilon", 1e-7)))
  else:  # RMSprop: Keras adds epsilon inside the square root, unlike TFF.
    rho, eps = float(take("rho", 0.9)), float(take("epsilon", 1e-7))
    momentum, centered = float(take("momentum", 0.0)), bool(take("centered", False))
    check_range("rho", rho, 0.0, 1.0)
    check_range("momentum", momentum, 0.0, 1.0, hi_inclusive=True)
    result = Optimizer(
        lambda r: optax.rmsprop(r, decay=rho, eps=eps, eps_in_sqrt=True,
                                centered=centered, momentum=momentum or None),
        lr, "rmsprop")
  for key, value in config.items():  # Options this Keras version added.
    if value not in (None, False, 0):
      raise unsupported(f"{key}={value!r}")
  return result


class _KerasAdamState(NamedTuple):
  count: jax.Array
  mu: Any
  nu: Any


def _keras_adam(learning_rate: Any, b1: float, b2: float, eps: float
                ) -> optax.GradientTransformation:
  """Keras 3's Adam, operation for operation: with `α = lr·√(1-β₂ᵗ)/(1-β₁ᵗ)`
  (powers in float32), `m += (g - m)(1-β₁)`, `v += (g² - v)(1-β₂)` (`1-β` in
  Python's float64, then float32), update `-(m·α) / (√v + ε)`.

  `build_adam` is TFF's variant of the same formula, whose `1-β` is computed in
  float32 (a last-bit difference per step that Adam's normalization can
  amplify): a Keras optimizer converts to Keras's arithmetic.

  Example:
    >>> tx = _keras_adam(1e-3, 0.9, 0.999, 1e-7)
    >>> updates, state = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.zeros(2)}))
  """
  def init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return _KerasAdamState(jnp.zeros((), jnp.int32), zeros, zeros)

  def update(grads, state, params=None):
    del params
    mu = jax.tree_util.tree_map(lambda m, g: m + (g - m) * (1 - b1), state.mu, grads)
    nu = jax.tree_util.tree_map(lambda v, g: v + (jnp.square(g) - v) * (1 - b2), state.nu, grads)
    t = (state.count + 1).astype(jnp.float32)
    alpha = learning_rate * jnp.sqrt(1 - jnp.power(jnp.float32(b2), t)) / (
        1 - jnp.power(jnp.float32(b1), t))
    out = jax.tree_util.tree_map(lambda m, v: -(m * alpha) / (jnp.sqrt(v) + eps), mu, nu)
    return out, _KerasAdamState(state.count + 1, mu, nu)

  return optax.GradientTransformation(init, update)
