"""TFF's optimizers: `build_sgdm`, `build_adam`, `build_yogi`, `build_adagrad`,
`build_rmsprop`, with TFF's state layout and arithmetic.

Each keeps its hyperparameters in its state, an `OrderedDict` keyed as in TFF
(`learning_rate`, `momentum`, `beta_1`, ..., then `step` and the per-weight
`accumulator` / `preconditioner`), and computes one step leaf by leaf in the
leaf's dtype, operation for operation as TFF does (bias corrections in
float32). TFF's `next` and the optax `update` share that one step: `next`
returns `w - delta` and `update` returns `-delta`, so the two agree exactly.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from fedjit.learning.optimizers._optimizer import (LEARNING_RATE_KEY, LearningRate,
                                                   Optimizer, State, _describe,
                                                   _check_hparam_names, _is_none,
                                                   _mismatch, check_range,
                                                   check_weights_gradients_match,
                                                   check_weights_state_match,
                                                   describe_tree, replace_entries,
                                                   tree_as_arrays,
                                                   zeros_like_specs)

__all__ = ["build_adagrad", "build_adam", "build_adamw", "build_rmsprop", "build_sgdm",
           "build_yogi"]


class _TffOptimizer(Optimizer):
  """An optimizer given by TFF's state layout and a per-leaf step.

  Subclasses set `_HPARAMS` (names, in TFF's order), `_SLOTS` (per-weight
  state entries and their initial fill) and `_STEP` (whether the state counts
  steps), and define `_leaf(hp, step, g, *slots) -> (delta, *new_slots)`,
  where the new weight is `w - delta`.
  """

  _HPARAMS: tuple[str, ...] = ()
  _SLOTS: tuple[tuple[str, str], ...] = ()  # (name, attribute holding the fill)
  _STEP = False
  _NEEDS_WEIGHTS = False  # Whether _leaf takes the weight as `w=`.

  def __init__(self, name: str, learning_rate: LearningRate, **hparams: Any):
    super().__init__(None, learning_rate, name)
    self._hparams = hparams
    for key, value in hparams.items():
      setattr(self, key, value)

  def _hparam_keys(self) -> tuple[str, ...]:
    return self._HPARAMS

  def _state_keys(self) -> list[str]:
    """The state's entries in TFF's order."""
    return (list(self._hparam_keys()) + (["step"] if self._STEP else []) +
            [name for name, _ in self._slots()])

  def _ordered(self, entries: dict) -> collections.OrderedDict:
    return collections.OrderedDict((k, entries[k]) for k in self._state_keys())

  def _slots(self) -> tuple[tuple[str, Any], ...]:
    return tuple((name, getattr(self, fill) if isinstance(fill, str) else fill)
                 for name, fill in self._SLOTS)

  # TFF's API ---------------------------------------------------------------

  def initialize(self, specs: Any) -> State:
    """TFF's initial state: hyperparameters as given, zero step, accumulators.

    Example:
      >>> build_sgdm(0.1, momentum=0.9).initialize(jax.ShapeDtypeStruct((1,), np.float32))
      OrderedDict([('learning_rate', 0.1), ('momentum', 0.9), ('accumulator', Array([0.], dtype=float32))])
    """
    lr = self.learning_rate
    state = collections.OrderedDict()
    for key in self._hparam_keys():
      if key == LEARNING_RATE_KEY:
        state[key] = self.learning_rate_at(0) if callable(lr) else lr
      else:
        state[key] = self._hparams[key]
    if self._STEP:
      state["step"] = 0
    for name, fill in self._slots():
      state[name] = zeros_like_specs(specs, fill)
    return self._ordered(state)

  def next(self, state: State, weights: Any, gradients: Any) -> tuple[State, Any]:
    """One step of TFF's update; `None` gradients leave their weights as they are.

    Example:
      >>> opt = build_sgdm(0.01, momentum=0.5)
      >>> state = opt.initialize(jax.ShapeDtypeStruct((1,), np.float32))
      >>> state, w = opt.next(state, np.array([1.0], np.float32), np.array([2.0], np.float32))
      >>> w
      Array([0.98], dtype=float32)
    """
    check_weights_gradients_match(weights, gradients)
    new_state, deltas, treedef = self._step(state, gradients, weights, None, strict=True)
    w_leaves = jax.tree.leaves(weights, is_leaf=_is_none)
    new_w = [w if d is None else w - d for w, d in zip(w_leaves, deltas)]
    return new_state, jax.tree.unflatten(treedef, new_w)

  def get_hparams(self, state: State) -> collections.OrderedDict:
    """The hyperparameters in `state`, in TFF's order.

    Example:
      >>> opt = build_adam(0.1, beta_1=0.92)
      >>> opt.get_hparams(opt.initialize(jax.ShapeDtypeStruct((1,), np.float32)))
      OrderedDict([('learning_rate', 0.1), ('beta_1', 0.92), ('beta_2', 0.999), ('epsilon', 1e-07)])
    """
    self._check_state(state)
    return collections.OrderedDict((k, state[k]) for k in self._hparam_keys())

  def set_hparams(self, state: State, hparams: Mapping[str, Any]) -> State:
    """A copy of `state` with the given hyperparameters replaced (dtypes kept).

    Example:
      >>> opt = build_rmsprop(0.1)
      >>> state = opt.set_hparams(opt.initialize(spec), {'learning_rate': 0.5, 'decay': 0.5})
    """
    self._check_state(state)
    _check_hparam_names(self, self.get_hparams(state), hparams)
    return replace_entries(state, hparams)

  # optax's API -------------------------------------------------------------

  def init(self, params: Any) -> State:
    """`initialize(params)` with hyperparameters and step as JAX arrays.

    Example:
      >>> build_adam(0.01).init({"w": jnp.zeros(3)})["step"]
      Array(0, dtype=int32)
    """
    state = self.initialize(params)
    for key in list(state):
      if key in self._hparam_keys() or key == "step":
        state[key] = tree_as_arrays(state[key])
    return state

  def _update(self, grads: Any, state: State, params: Any,
              learning_rate: Any) -> tuple[Any, State]:
    if params is not None:
      why = _mismatch(params, grads, allow_none=True, canonical=None)
      if why is not None:
        raise ValueError(
            f"{self.name}: the gradients must match the parameters in structure and "
            f"shapes, but {why}: parameters are {describe_tree(params)}, gradients "
            f"are {describe_tree(grads)}.")
    if params is None and self._NEEDS_WEIGHTS:
      raise TypeError(f"{self.name}'s update depends on the parameters (weight decay): "
                      f"call update(grads, state, params).")
    new_state, deltas, treedef = self._step(state, grads, params, learning_rate,
                                            strict=False)
    updates = [None if d is None else -d for d in deltas]
    return jax.tree.unflatten(treedef, updates), new_state

  # The step ----------------------------------------------------------------

  def _check_state(self, state: Any) -> None:
    expected = self._state_keys()
    if not isinstance(state, Mapping) or sorted(state) != sorted(expected):
      got = list(state) if isinstance(state, Mapping) else _describe(state)
      raise ValueError(
          f"Optimizer {self.name!r} expects a state with entries {expected} (from its "
          f"initialize or init), got {got}. Was the state made by another optimizer?")

  def _step(self, state: State, grads: Any, weights: Any, learning_rate: Any, *,
            strict: bool) -> tuple[State, list, Any]:
    """Returns (new state, per-leaf deltas or None, treedef of the leaves)."""
    self._check_state(state)
    g_leaves, treedef = jax.tree.flatten(grads, is_leaf=_is_none)
    slots = {}
    for name, _ in self._slots():
      if strict:
        check_weights_state_match(weights, state[name], name)
      else:
        why = _mismatch(state[name], grads, allow_none=True, canonical=None)
        if why is not None:
          raise ValueError(
              f"{self.name}: the optimizer state's {name} does not match the "
              f"gradients ({why}): {name} is {describe_tree(state[name])}, gradients "
              f"are {describe_tree(grads)}. Call init(params) for these parameters.")
      slots[name] = jax.tree.leaves(state[name], is_leaf=_is_none)
    hp = {k: state[k] for k in self._hparam_keys()}
    if learning_rate is not None:
      hp[LEARNING_RATE_KEY] = learning_rate
    step = state["step"] + 1 if self._STEP else None
    hp = self._prepare(hp, step)
    names = [name for name, _ in self._slots()]
    deltas = []
    new_slots = {name: [] for name in names}
    w_leaves = (jax.tree.leaves(weights, is_leaf=_is_none) if self._NEEDS_WEIGHTS
                else [None] * len(g_leaves))
    for i, (g, w) in enumerate(zip(g_leaves, w_leaves)):
      old = [slots[name][i] for name in names]
      if g is None:
        deltas.append(None)
        out = old
      else:
        dtype = old[0].dtype if old else jnp.result_type(g)
        extra = {"w": jnp.asarray(w, dtype)} if self._NEEDS_WEIGHTS else {}
        delta, *out = self._leaf(hp, step, jnp.asarray(g, dtype), *old, **extra)
        deltas.append(delta)
        out = [jnp.asarray(o, s.dtype) for o, s in zip(out, old)]
      for name, value in zip(names, out):
        new_slots[name].append(value)
    new_state = collections.OrderedDict()
    for key in self._hparam_keys():
      new_state[key] = state[key]
    if learning_rate is not None:
      lr_old = state[LEARNING_RATE_KEY]
      new_state[LEARNING_RATE_KEY] = (jnp.asarray(learning_rate, lr_old.dtype)
                                      if hasattr(lr_old, "dtype") else learning_rate)
    if self._STEP:
      new_state["step"] = step
    for name in names:
      slot_def = jax.tree.structure(state[name], is_leaf=_is_none)
      new_state[name] = jax.tree.unflatten(slot_def, new_slots[name])
    return self._ordered(new_state), deltas, treedef

  def _prepare(self, hp: dict, step: Any) -> dict:
    """Values shared by every leaf of one step (e.g. a bias-corrected rate)."""
    del step
    return hp

  def _leaf(self, hp: dict, step: Any, g: jax.Array, *slots: jax.Array):
    raise NotImplementedError


class _BiasCorrected(_TffOptimizer):
  """Adam and Yogi: TFF's `normalized_lr`, computed once per step."""
  _HPARAMS = (LEARNING_RATE_KEY, "beta_1", "beta_2", "epsilon")
  _STEP = True

  def _prepare(self, hp, step):
    return dict(hp, normalized_lr=_bias_corrected_lr(hp, step))


def _cast(x: Any, dtype: Any) -> jax.Array:
  return jnp.asarray(x, dtype)


def _bias_corrected_lr(hp: dict, step: Any) -> jax.Array:
  """TFF's `lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)`, in float32."""
  f32 = jnp.float32
  t = jnp.asarray(step, f32)
  b1, b2 = jnp.asarray(hp["beta_1"], f32), jnp.asarray(hp["beta_2"], f32)
  return (jnp.asarray(hp[LEARNING_RATE_KEY], f32) * jnp.sqrt(1.0 - jnp.power(b2, t))
          / (1.0 - jnp.power(b1, t)))


# ---------------------------------------------------------------------------
# SGD with momentum.


class _SGD(_TffOptimizer):

  def _hparam_keys(self):
    return ((LEARNING_RATE_KEY, "momentum") if self._hparams["momentum"]
            else (LEARNING_RATE_KEY,))

  def _slots(self):
    return (("accumulator", 0.0),) if self._hparams["momentum"] else ()

  def _leaf(self, hp, step, g, *slots):
    lr = _cast(hp[LEARNING_RATE_KEY], g.dtype)
    if not slots:
      return lr * g, *()
    (a,) = slots
    m = _cast(hp["momentum"], g.dtype)
    a = m * a + g
    if self.nesterov:
      return lr * (g + m * a), a
    return lr * a, a


def build_sgdm(learning_rate: LearningRate = 0.01, momentum: float | None = None,
               nesterov: bool = False) -> Optimizer:
  """Gradient descent, with (Nesterov) momentum if `momentum` is given.

  Without momentum: `w = w - lr * g`, and the state is just
  `{'learning_rate'}`. With momentum `m` in [0, 1], velocity `v` from zero:

      v = m * v + g
      w = w - lr * v                  # nesterov=False
      w = w - lr * (g + m * v)        # nesterov=True

  and the state is `{'learning_rate', 'momentum', 'accumulator'}` (TFF's
  `build_sgdm`; `momentum=0` is plain SGD, as `None`).

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    momentum: `None`, or a float in [0, 1].
    nesterov: whether to use Nesterov momentum (needs `momentum > 0`).

  Returns:
    An `Optimizer` named `"sgd"` or `"sgdm"`.

  Raises:
    ValueError: if a hyperparameter is out of range, or `nesterov` without
      momentum.

  Example:
    >>> opt = build_sgdm(learning_rate=0.1, momentum=0.9, nesterov=True)
    >>> state = opt.initialize(jax.ShapeDtypeStruct((2,), np.float32))
  """
  if momentum is not None:
    check_range("momentum", momentum, 0.0, 1.0, hi_inclusive=True)
  if nesterov and not momentum:
    raise ValueError(f"Nesterov momentum (nesterov=True) requires `momentum` to be a "
                     f"float > 0, got momentum={momentum!r}; e.g. build_sgdm(0.1, "
                     f"momentum=0.9, nesterov=True).")
  return _SGD("sgdm" if momentum else "sgd", learning_rate, momentum=momentum,
              nesterov=bool(nesterov))


# ---------------------------------------------------------------------------
# Adam.


class _Adam(_BiasCorrected):
  _SLOTS = (("accumulator", 0.0), ("preconditioner", 0.0))

  def _leaf(self, hp, step, g, a, p):
    dtype = g.dtype
    normalized_lr = hp["normalized_lr"]
    a = a + (g - a) * (1.0 - _cast(hp["beta_1"], dtype))
    p = p + (jnp.square(g) - p) * (1.0 - _cast(hp["beta_2"], dtype))
    delta = _cast(normalized_lr, dtype) * a / (jnp.sqrt(p) + _cast(hp["epsilon"], dtype))
    return delta, a, p


def build_adam(learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-7) -> Optimizer:
  """Adam, exactly as TFF's `tff.learning.optimizers.build_adam` computes it.

  At step `t` (counting from 1), with accumulator `m` and preconditioner `v`
  starting at zero:

      m = m + (g - m) * (1 - beta_1)
      v = v + (g**2 - v) * (1 - beta_2)
      normalized_lr = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
      w = w - normalized_lr * m / (sqrt(v) + epsilon)

  all in float32 for float32 weights, as TFF. This is TFF's (and Keras's)
  formula, which adds `epsilon` to the uncorrected `sqrt(v)`; `optax.adam` adds
  it after bias correction instead. Pass `optax.adam(...)` itself for
  optax's variant. State: `learning_rate, beta_1, beta_2, epsilon, step,
  accumulator, preconditioner`.

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
    >>> state = opt.initialize([jax.ShapeDtypeStruct((3,), np.float32)])
  """
  check_range("beta_1", beta_1, 0.0, 1.0)
  check_range("beta_2", beta_2, 0.0, 1.0)
  check_range("epsilon", epsilon, 0.0, math.inf)
  return _Adam("adam", learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


# ---------------------------------------------------------------------------
# AdamW.


class _AdamW(_BiasCorrected):
  _HPARAMS = (LEARNING_RATE_KEY, "beta_1", "beta_2", "epsilon", "weight_decay")
  _SLOTS = (("accumulator", 0.0), ("preconditioner", 0.0))
  _NEEDS_WEIGHTS = True

  def _state_keys(self):  # TFF's order: weight_decay comes last.
    return [LEARNING_RATE_KEY, "beta_1", "beta_2", "epsilon", "step", "accumulator",
            "preconditioner", "weight_decay"]

  def _prepare(self, hp, step):
    f32 = jnp.float32
    t = jnp.asarray(step, f32)
    b1, b2 = jnp.asarray(hp["beta_1"], f32), jnp.asarray(hp["beta_2"], f32)
    return dict(hp, normalization=jnp.sqrt(1.0 - jnp.power(b2, t)) / (1.0 - jnp.power(b1, t)))

  def _leaf(self, hp, step, g, a, p, *, w):
    dtype = g.dtype
    a = a + (g - a) * (1.0 - _cast(hp["beta_1"], dtype))
    p = p + (jnp.square(g) - p) * (1.0 - _cast(hp["beta_2"], dtype))
    delta = _cast(hp[LEARNING_RATE_KEY], dtype) * (
        _cast(hp["normalization"], dtype) * a / (jnp.sqrt(p) + _cast(hp["epsilon"], dtype))
        + _cast(hp["weight_decay"], dtype) * w)
    return delta, a, p


def build_adamw(learning_rate: LearningRate = 0.001, beta_1: float = 0.9,
                beta_2: float = 0.999, epsilon: float = 1e-7,
                weight_decay: float = 0.004) -> Optimizer:
  """AdamW (Loshchilov and Hutter 2019), as TFF's `build_adamw` computes it.

  At step `t` (counting from 1), with accumulator `m` and preconditioner `v`
  starting at zero and decoupled weight decay `wd`:

      m = m + (g - m) * (1 - beta_1)
      v = v + (g**2 - v) * (1 - beta_2)
      normalization = sqrt(1 - beta_2**t) / (1 - beta_1**t)
      w = w - lr * (normalization * m / (sqrt(v) + epsilon) + wd * w)

  State: `learning_rate, beta_1, beta_2, epsilon, step, accumulator,
  preconditioner, weight_decay` (TFF's order). The optax `update` needs
  `params` (the decay uses the weights).

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    beta_1: decay of the first moment, in [0, 1).
    beta_2: decay of the second moment, in [0, 1).
    epsilon: a small non-negative float for numerical stability.
    weight_decay: a non-negative float (Keras's default 0.004).

  Returns:
    An `Optimizer` named `"adamw"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> opt = build_adamw(learning_rate=1e-3, weight_decay=1e-4)
  """
  check_range("beta_1", beta_1, 0.0, 1.0)
  check_range("beta_2", beta_2, 0.0, 1.0)
  check_range("epsilon", epsilon, 0.0, math.inf)
  check_range("weight_decay", weight_decay, 0.0, math.inf)
  return _AdamW("adamw", learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                weight_decay=weight_decay)


# ---------------------------------------------------------------------------
# Yogi.


class _Yogi(_BiasCorrected):
  _SLOTS = (("accumulator", 0.0), ("preconditioner", "initial_preconditioner_value"))

  def _leaf(self, hp, step, g, a, p):
    dtype = g.dtype
    normalized_lr = hp["normalized_lr"]
    a = a + (g - a) * (1.0 - _cast(hp["beta_1"], dtype))
    g2 = jnp.square(g)
    sign = jnp.sign(g2 - p)
    p = p + (1 - _cast(hp["beta_2"], dtype)) * sign * g2
    delta = _cast(normalized_lr, dtype) * a / (jnp.sqrt(p) + _cast(hp["epsilon"], dtype))
    return delta, a, p


def build_yogi(learning_rate: LearningRate = 0.01, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-3,
               initial_preconditioner_value: float = 1e-6) -> Optimizer:
  """Yogi (Zaheer et al. 2018), exactly as TFF's `build_yogi` computes it.

  At step `t` (counting from 1), with accumulator `a = 0` and preconditioner
  `s = initial_preconditioner_value` at the start:

      a = a + (g - a) * (1 - beta_1)
      s = s + (1 - beta_2) * sign(g**2 - s) * g**2
      normalized_lr = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
      w = w - normalized_lr * a / (sqrt(s) + epsilon)

  This is TFF's variant, not `optax.yogi` (which starts the first moment at
  `initial_preconditioner_value` and adds `epsilon` after bias correction);
  TFF's tuned FedYogi hyperparameters therefore carry over unchanged. Typically
  use about 10x the learning rate used for Adam. State as `build_adam`'s.

  Args:
    learning_rate: a non-negative float or a schedule `round_num -> lr`.
    beta_1: decay of the accumulator, in [0, 1).
    beta_2: decay of the preconditioner, in [0, 1).
    epsilon: a non-negative constant trading off adaptivity and noise.
    initial_preconditioner_value: the starting preconditioner, >= 0.

  Returns:
    An `Optimizer` named `"yogi"`.

  Raises:
    ValueError: if a hyperparameter is out of range.

  Example:
    >>> server_optimizer = build_yogi(learning_rate=0.01)
  """
  check_range("beta_1", beta_1, 0.0, 1.0)
  check_range("beta_2", beta_2, 0.0, 1.0)
  check_range("epsilon", epsilon, 0.0, math.inf)
  check_range("initial_preconditioner_value", initial_preconditioner_value, 0.0, math.inf)
  return _Yogi("yogi", learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
               initial_preconditioner_value=initial_preconditioner_value)


# ---------------------------------------------------------------------------
# Adagrad.


class _Adagrad(_TffOptimizer):
  _HPARAMS = (LEARNING_RATE_KEY, "epsilon")
  _SLOTS = (("preconditioner", "initial_preconditioner_value"),)

  def _leaf(self, hp, step, g, p):
    dtype = g.dtype
    p = p + jnp.square(g)
    delta = _cast(hp[LEARNING_RATE_KEY], dtype) * g / jnp.sqrt(
        p + _cast(hp["epsilon"], dtype))
    return delta, p


def build_adagrad(learning_rate: LearningRate,
                  initial_preconditioner_value: float = 0.1,
                  epsilon: float = 1e-7) -> Optimizer:
  """Adagrad (Duchi et al. 2011), as TFF's `build_adagrad` and `optax.adagrad`.

  With the preconditioner `s` starting at `initial_preconditioner_value`:

      s = s + g**2
      w = w - lr * g / sqrt(s + epsilon)

  State: `learning_rate, epsilon, preconditioner`.

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
  check_range("initial_preconditioner_value", initial_preconditioner_value,
              0.0, math.inf)
  check_range("epsilon", epsilon, 0.0, math.inf)
  return _Adagrad("adagrad", learning_rate, epsilon=epsilon,
                  initial_preconditioner_value=initial_preconditioner_value)


# ---------------------------------------------------------------------------
# RMSprop.


class _RMSprop(_TffOptimizer):
  _HPARAMS = (LEARNING_RATE_KEY, "decay", "epsilon")
  _SLOTS = (("preconditioner", 0.0),)

  def _leaf(self, hp, step, g, p):
    dtype = g.dtype
    p = p + (jnp.square(g) - p) * (1 - _cast(hp["decay"], dtype))
    delta = _cast(hp[LEARNING_RATE_KEY], dtype) * g / (
        jnp.sqrt(p) + _cast(hp["epsilon"], dtype))
    return delta, p


def build_rmsprop(learning_rate: LearningRate = 0.01, decay: float = 0.9,
                  epsilon: float = 1e-7) -> Optimizer:
  """RMSprop (Tieleman and Hinton 2012), as TFF's `build_rmsprop` computes it.

  With the preconditioner `s` starting at zero:

      s = s + (g**2 - s) * (1 - decay)
      w = w - lr * g / (sqrt(s) + epsilon)

  (Keras adds `epsilon` inside the square root, which `as_optimizer`
  preserves for a Keras RMSprop.) State: `learning_rate, decay, epsilon,
  preconditioner`.

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
  check_range("decay", decay, 0.0, 1.0)
  check_range("epsilon", epsilon, 0.0, math.inf)
  return _RMSprop("rmsprop", learning_rate, decay=decay, epsilon=epsilon)
