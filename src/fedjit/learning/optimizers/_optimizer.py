"""The `Optimizer` base: TFF's `initialize` / `next` and an optax transformation.

One optimizer, two ways to drive it:

* TFF's: `state = opt.initialize(specs)`, then
  `state, weights = opt.next(state, weights, gradients)`; the state holds the
  hyperparameters, which `get_hparams` / `set_hparams` read and change.
* optax's: `state = opt.init(params)`, then
  `updates, state = opt.at_round(k).update(grads, state, params)`, where the
  learning rate may follow a schedule over federated rounds (`k` may be
  traced, so one jitted round program serves every round).

Both drive the same state layout. The learning layer uses the optax one; a
constant learning rate is read from the state, so `set_hparams` on the
server optimizer's state between rounds changes the next round.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Callable, Mapping, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["LEARNING_RATE_KEY", "Optimizer", "check_weights_gradients_match",
           "check_weights_state_match"]

LEARNING_RATE_KEY = "learning_rate"
"""The state key of the learning rate (TFF's `LEARNING_RATE_KEY`)."""

Schedule = Callable[[Any], Any]
"""A traceable function `round_num -> learning rate`, e.g. an optax schedule."""

LearningRate = Union[float, Schedule]
"""A constant learning rate or a `Schedule`."""

State = Any
"""An optimizer state: for fedjit's builders an `OrderedDict` as in TFF."""

_OPTAX_STATE_KEY = "optax_state"


class Optimizer:
  """An optimizer with TFF's `initialize`/`next` and optax's `init`/`update`.

  Built by `build_sgdm`, `build_adam`, `build_yogi`, `build_adagrad`,
  `build_rmsprop` (TFF's state layout and arithmetic), by `as_optimizer` from
  an optax transformation or a Keras optimizer, or directly as
  `Optimizer(make, learning_rate, name)` where `make(lr)` returns an optax
  transformation. Subclasses may instead define `initialize` and `next` (and
  optionally `get_hparams` / `set_hparams`) as in TFF; `init` / `update` /
  `at_round` are then derived from them.

  Attributes:
    name: a short name such as `"sgdm"` or `"adam"`.
    learning_rate: the constant, the per-round schedule, or `None` when the
      optimizer fixes its own step size (a wrapped optax transformation).

  Example:
    >>> opt = build_sgdm(learning_rate=0.1, momentum=0.9)
    >>> state = opt.initialize(jax.ShapeDtypeStruct((2,), np.float32))
    >>> state, w = opt.next(state, np.ones(2, np.float32), np.ones(2, np.float32))
    >>> opt.get_hparams(state)
    OrderedDict([('learning_rate', 0.1), ('momentum', 0.9)])
  """

  name: str = "custom"
  learning_rate: LearningRate | None = None
  _make: Callable[[Any], optax.GradientTransformation] | None = None

  def __init__(self, make: Callable[[Any], optax.GradientTransformation] | None = None,
               learning_rate: LearningRate | None = None, name: str | None = None):
    if make is not None and not callable(make):
      raise TypeError(f"Optimizer expects `make` to be a function learning_rate -> "
                      f"optax.GradientTransformation, got {_describe(make)}.")
    if make is None and not _defines_tff_api(type(self)):
      raise TypeError(
          "Optimizer needs `make`, a function learning_rate -> "
          "optax.GradientTransformation (e.g. Optimizer(optax.sgd, 0.1, 'sgd')), "
          "or a subclass that defines initialize(specs) and "
          "next(state, weights, gradients) as in TFF.")
    if learning_rate is not None and not callable(learning_rate):
      check_range("learning_rate", learning_rate, 0.0, math.inf)
    elif callable(learning_rate):
      _check_schedule(learning_rate)
    self._make = make
    self.learning_rate = learning_rate
    self.name = name or type(self).__name__.lower()

  # -------------------------------------------------------------------------
  # TFF's API.

  def initialize(self, specs: Any) -> State:
    """The initial state for weights described by `specs` (TFF's `initialize`).

    Args:
      specs: a pytree of `jax.ShapeDtypeStruct`s (TFF's `tf.TensorSpec`),
        arrays or `fedjit.TensorType`s describing the weights.

    Returns:
      The optimizer state: hyperparameters and per-weight accumulators.

    Example:
      >>> state = build_adam(0.01).initialize([jax.ShapeDtypeStruct((3,), np.float32)])
      >>> list(state)
      ['learning_rate', 'beta_1', 'beta_2', 'epsilon', 'step', 'accumulator', 'preconditioner']
    """
    return self.init(zeros_like_specs(specs))

  def next(self, state: State, weights: Any, gradients: Any) -> tuple[State, Any]:
    """One step: returns `(new_state, new_weights)` (TFF's `next`).

    Args:
      state: the state from `initialize` or a previous `next`.
      weights: a pytree of arrays with the structure of `specs`.
      gradients: gradients with the structure, shapes and dtypes of `weights`.

    Returns:
      `(state, weights)` after the step.

    Raises:
      ValueError: if `weights`, `gradients` and the state do not match.

    Example:
      >>> opt = build_sgdm(0.5)
      >>> state = opt.initialize(jax.ShapeDtypeStruct((1,), np.float32))
      >>> state, w = opt.next(state, np.ones(1, np.float32), np.ones(1, np.float32))
      >>> w
      Array([0.5], dtype=float32)
    """
    check_weights_gradients_match(weights, gradients, allow_none=False)
    updates, state = self._update(gradients, state, weights, None)
    return state, optax.apply_updates(weights, updates)

  def get_hparams(self, state: State) -> collections.OrderedDict:
    """The hyperparameters held in `state`, by name (TFF's `get_hparams`).

    Args:
      state: a state of this optimizer.

    Returns:
      An `OrderedDict` such as `{'learning_rate': 0.1, 'momentum': 0.9}`;
      empty for an optimizer without hyperparameters in its state.

    Example:
      >>> opt = build_rmsprop(0.1)
      >>> opt.get_hparams(opt.initialize(jax.ShapeDtypeStruct((1,), np.float32)))
      OrderedDict([('learning_rate', 0.1), ('decay', 0.9), ('epsilon', 1e-07)])
    """
    if self._make is None:
      return collections.OrderedDict()  # A TFF-style subclass without hparams.
    if self.learning_rate is not None:
      return collections.OrderedDict([(LEARNING_RATE_KEY, state[LEARNING_RATE_KEY])])
    if _is_inject_state(state):
      return collections.OrderedDict(state.hyperparams)
    return collections.OrderedDict()

  def set_hparams(self, state: State, hparams: Mapping[str, Any]) -> State:
    """A copy of `state` with the hyperparameters in `hparams` replaced.

    Values keep the dtype of the state's values, so a state from `init` (float32
    arrays) keeps its type and a jitted round accepts it. Between rounds this
    changes what the next round uses, e.g. a server learning rate; a per-round
    schedule (`learning_rate=` a function) overrides the state's learning rate.

    Args:
      state: a state of this optimizer.
      hparams: a mapping from hyperparameter names (see `get_hparams`) to values.

    Returns:
      The new state (the input is not modified).

    Raises:
      KeyError: for a name that is not a hyperparameter of this state.

    Example:
      >>> opt = build_sgdm(0.1, momentum=0.9)
      >>> state = opt.initialize(jax.ShapeDtypeStruct((1,), np.float32))
      >>> opt.get_hparams(opt.set_hparams(state, {'learning_rate': 0.5}))
      OrderedDict([('learning_rate', 0.5), ('momentum', 0.9)])
    """
    if self._make is None:
      return state  # TFF's default for an optimizer without hparams.
    current = self.get_hparams(state)
    _check_hparam_names(self, current, hparams)
    if not hparams:
      return state
    if _is_inject_state(state):
      new = dict(state.hyperparams)
      new.update({k: _like(v, new[k]) for k, v in hparams.items()})
      return state._replace(hyperparams=new)
    return replace_entries(state, hparams)

  # -------------------------------------------------------------------------
  # optax's API.

  def learning_rate_at(self, round_num: Any) -> jax.Array:
    """The built learning rate for round `round_num`, a float32 scalar.

    Traceable: `round_num` may be a traced int32 under `jax.jit` or `jax.vmap`.
    NaN when the optimizer fixes its own step size (`learning_rate is None`).
    A constant is returned as built; the state's value (after `set_hparams`)
    is what a step with a constant learning rate uses.

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
    """The optax transformation that steps with `learning_rate` (may be traced).

    The given rate replaces the state's. For a wrapped optax transformation
    (`self.learning_rate is None`) the transformation itself is returned.

    Args:
      learning_rate: a scalar, e.g. from `learning_rate_at`.

    Returns:
      An `optax.GradientTransformation` over this optimizer's state.

    Example:
      >>> tx = build_adam().transformation(jnp.float32(1e-2))
      >>> updates, state = tx.update(grads, tx.init(params), params)
    """
    if self._make is not None and self.learning_rate is None:
      return self._make(None)
    return optax.GradientTransformation(
        self.init, lambda g, s, p=None: self._update(g, s, p, learning_rate))

  def at_round(self, round_num: Any) -> optax.GradientTransformation:
    """The transformation for round `round_num`.

    With a schedule, it steps with `learning_rate_at(round_num)`; with a
    constant, with the learning rate held in the state (so `set_hparams`
    between rounds takes effect).

    Args:
      round_num: the round number (a Python int or a possibly traced int32).

    Returns:
      An `optax.GradientTransformation`.

    Example:
      >>> updates, state = opt.at_round(round_num).update(grads, state, params)
    """
    if callable(self.learning_rate):
      return self.transformation(self.learning_rate_at(round_num))
    if self._make is not None and self.learning_rate is None:
      return self._make(None)
    return optax.GradientTransformation(
        self.init, lambda g, s, p=None: self._update(g, s, p, None))

  def init(self, params: Any) -> State:
    """The optimizer state for `params` (optax's `init`), as jit-ready arrays.

    The layout is `initialize`'s, with the hyperparameters as float32 (and the
    step count as int32) arrays, so the state has one type across rounds.

    Args:
      params: a pytree of arrays.

    Returns:
      The optimizer state.

    Example:
      >>> state = build_sgdm(0.1, momentum=0.9).init({"w": jnp.zeros(3)})
      >>> state["learning_rate"]
      Array(0.1, dtype=float32)
    """
    if self._make is None:  # A TFF-style subclass: derive from initialize.
      return tree_as_arrays(self.initialize(specs_of(params)))
    lr = None if self.learning_rate is None else self.learning_rate_at(0)
    inner = self._make(lr).init(params)
    if lr is None:
      return inner
    return collections.OrderedDict([(LEARNING_RATE_KEY, lr), (_OPTAX_STATE_KEY, inner)])

  def update(self, grads: Any, state: State, params: Any = None) -> tuple[Any, State]:
    """One optax update at round 0 (plain optax-style use).

    Args:
      grads: a pytree of gradients matching `params`.
      state: the state from `init` or a previous `update`.
      params: the current parameters.

    Returns:
      `(updates, new_state)`; apply with `optax.apply_updates(params, updates)`.

    Example:
      >>> updates, state = opt.update(grads, state, params)
    """
    return self.at_round(0).update(grads, state, params)

  def _update(self, grads: Any, state: State, params: Any,
              learning_rate: Any) -> tuple[Any, State]:
    """`(updates, new_state)`; `learning_rate=None` uses the state's."""
    if self._make is None:  # A TFF-style subclass: derive from next.
      if params is None:
        raise TypeError(f"Optimizer {self.name!r} defines next(state, weights, "
                        f"gradients), so its optax update needs `params`: call "
                        f"update(grads, state, params).")
      if learning_rate is not None and isinstance(state, Mapping) and \
          LEARNING_RATE_KEY in state:
        state = replace_entries(state, {LEARNING_RATE_KEY: learning_rate})
      new_state, new_params = self.next(state, params, grads)
      updates = jax.tree.map(lambda n, p: jnp.asarray(n) - p, new_params, params)
      return updates, new_state
    if self.learning_rate is None:
      return self._make(None).update(grads, state, params)
    if not (isinstance(state, Mapping) and _OPTAX_STATE_KEY in state):
      raise ValueError(f"Optimizer {self.name!r} expects the state from its own "
                       f"init/initialize (keys 'learning_rate', 'optax_state'), got "
                       f"{_describe(state)}.")
    lr = state[LEARNING_RATE_KEY] if learning_rate is None else learning_rate
    updates, inner = self._make(lr).update(grads, state[_OPTAX_STATE_KEY], params)
    new_state = collections.OrderedDict(state)
    new_state[LEARNING_RATE_KEY] = _like(lr, state[LEARNING_RATE_KEY])
    new_state[_OPTAX_STATE_KEY] = inner
    return updates, new_state

  def __repr__(self) -> str:
    lr = self.learning_rate
    if lr is None:
      lr_text = "fixed by the wrapped transformation"
    elif callable(lr):
      lr_text = f"<schedule {getattr(lr, '__qualname__', type(lr).__qualname__)}>"
    else:
      lr_text = repr(lr)
    return f"Optimizer(name={self.name!r}, learning_rate={lr_text})"


def _is_inject_state(state: Any) -> bool:
  """Whether `state` is from `optax.inject_hyperparams(...)`."""
  kinds = tuple(getattr(optax, n) for n in ("InjectHyperparamsState",
                                            "InjectStatefulHyperparamsState")
                if hasattr(optax, n))
  return isinstance(state, kinds) or (
      hasattr(state, "hyperparams") and hasattr(state, "inner_state"))


def _defines_tff_api(cls: type) -> bool:
  return cls.initialize is not Optimizer.initialize and cls.next is not Optimizer.next


# ---------------------------------------------------------------------------
# Structure checks (TFF's names).


def _is_none(x: Any) -> bool:
  return x is None


def _leaf_text(x: Any) -> str:
  if x is None:
    return "None"
  try:
    return f"{np.dtype(x.dtype).name}{list(np.shape(x))}"
  except (AttributeError, TypeError):
    return type(x).__name__


def describe_tree(tree: Any) -> str:
  """A compact text of a pytree's structure, shapes and dtypes, for errors.

  Example:
    >>> describe_tree([np.zeros(2, np.float32), {"b": np.zeros(3)}])
    '[float32[2], {b: float64[3]}]'
  """
  return repr(jax.tree.map(_leaf_text, tree, is_leaf=_is_none)).replace("'", "")


def _dtype(x: Any, canonical: bool) -> np.dtype:
  dtype = np.dtype(getattr(x, "dtype", None) or np.result_type(x))
  return np.dtype(jax.dtypes.canonicalize_dtype(dtype)) if canonical else dtype


def _mismatch(a: Any, b: Any, *, allow_none: bool, canonical: bool) -> str | None:
  """Why `b` does not match `a` (structure, shapes, dtypes), or None."""
  a_leaves, a_def = jax.tree.flatten(a, is_leaf=_is_none)
  b_leaves, b_def = jax.tree.flatten(b, is_leaf=_is_none)
  if a_def != b_def:
    return "the structures differ"
  for x, y in zip(a_leaves, b_leaves):
    if y is None and allow_none:
      continue
    if x is None or y is None:
      return "one holds None where the other holds an array"
    if np.shape(x) != np.shape(y):
      return f"shapes {list(np.shape(x))} and {list(np.shape(y))} differ"
    if canonical is not None and _dtype(x, canonical) != _dtype(y, canonical):
      return f"dtypes {_dtype(x, canonical).name} and {_dtype(y, canonical).name} differ"
  return None


def check_weights_gradients_match(weights: Any, gradients: Any, *,
                                  allow_none: bool = True) -> None:
  """Raises ValueError unless `gradients` matches `weights` (TFF's check).

  Same structure (list vs tuple counts), and at every leaf where the gradient
  is not `None`, the same shape and dtype.

  Args:
    weights: a pytree of arrays.
    gradients: a pytree of arrays (or `None` leaves, which are skipped).
    allow_none: whether `None` gradients are accepted.

  Raises:
    ValueError: with both structures, if they do not match.

  Example:
    >>> check_weights_gradients_match([np.zeros(2)], [np.zeros(3)])
    Traceback (most recent call last):
    ValueError: The gradients must match the weights ...
  """
  why = _mismatch(weights, gradients, allow_none=allow_none, canonical=False)
  if why is not None:
    raise ValueError(
        f"The gradients must match the weights in structure, shapes and dtypes, "
        f"but {why}: weights are {describe_tree(weights)}, gradients are "
        f"{describe_tree(gradients)}. Compute the gradients of a loss of these weights "
        f"(e.g. with jax.grad), in the weights' dtype.")


def check_weights_state_match(weights: Any, state: Any, name: str) -> None:
  """Raises ValueError unless the `name` entry of a state matches `weights`.

  Args:
    weights: a pytree of arrays.
    state: the per-weight part of an optimizer state (e.g. its accumulator).
    name: the state entry's name, for the message.

  Raises:
    ValueError: naming `name`, if structure, shapes or (canonical) dtypes differ.

  Example:
    >>> check_weights_state_match([np.zeros(2)], [np.zeros(3)], "accumulator")
    Traceback (most recent call last):
    ValueError: The optimizer state's accumulator does not match the weights ...
  """
  why = _mismatch(weights, state, allow_none=False, canonical=True)
  if why is not None:
    raise ValueError(
        f"The optimizer state's {name} does not match the weights ({why}): "
        f"{name} is {describe_tree(state)}, weights are {describe_tree(weights)}. "
        f"Was initialize(specs) (or init(params)) called for other weights? Call it "
        f"with these weights, e.g. optimizer.initialize(weights).")


# ---------------------------------------------------------------------------
# Helpers shared by the builders.


def specs_of(tree: Any) -> Any:
  """`jax.ShapeDtypeStruct`s of a pytree of arrays (or of specs)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), _dtype(x, True)), tree)


def zeros_like_specs(specs: Any, fill: Any = 0) -> Any:
  """Arrays of `fill` with the shapes and (JAX-canonical) dtypes of `specs`."""
  def make(spec):
    if not (hasattr(spec, "shape") and hasattr(spec, "dtype")):
      raise TypeError(f"initialize expects a pytree of specs with .shape and .dtype "
                      f"(jax.ShapeDtypeStruct((2,), np.float32), an array or a "
                      f"fedjit.TensorType), got {_describe(spec)}.")
    dtype = jax.dtypes.canonicalize_dtype(np.dtype(spec.dtype))
    return jnp.full(tuple(spec.shape), fill, dtype)
  return jax.tree.map(make, specs)


def tree_as_arrays(tree: Any) -> Any:
  """Python numbers and NumPy values as strongly typed JAX arrays."""
  def convert(x):
    if isinstance(x, jax.Array):
      return jnp.asarray(x, x.dtype)  # Drops a weak type.
    if isinstance(x, bool):
      return jnp.asarray(x)
    if isinstance(x, int):
      return jnp.asarray(x, jnp.int32)
    if isinstance(x, float):
      return jnp.asarray(x, jnp.float32)
    return jnp.asarray(x, jax.dtypes.canonicalize_dtype(_dtype(x, False)))
  return jax.tree.map(convert, tree)


def _like(value: Any, old: Any) -> Any:
  """`value` converted to the dtype of `old` when `old` is an array."""
  if isinstance(old, (jax.Array, np.ndarray, np.generic)):
    new = jnp.asarray(value, old.dtype)
    if new.shape != np.shape(old):
      raise ValueError(f"A hyperparameter of shape {list(np.shape(old))} cannot be "
                       f"set to a value of shape {list(new.shape)}.")
    return new
  return value


def replace_entries(state: Mapping[str, Any], entries: Mapping[str, Any]) -> Any:
  """A copy of a mapping `state` with `entries` replaced (dtypes kept)."""
  new = collections.OrderedDict(state)
  for key, value in entries.items():
    new[key] = _like(value, state[key])
  return new


def _check_hparam_names(opt: Any, current: Mapping[str, Any],
                        hparams: Mapping[str, Any]) -> None:
  if not isinstance(hparams, Mapping):
    raise TypeError(f"set_hparams expects a mapping from names to values (e.g. "
                    f"{{'learning_rate': 0.5}}), got {_describe(hparams)}.")
  unknown = [k for k in hparams if k not in current]
  if unknown:
    raise KeyError(f"Optimizer {opt.name!r} has no hyperparameter {unknown[0]!r} in "
                   f"this state; its hyperparameters are {list(current)} "
                   f"(see get_hparams(state)).")


def check_range(name: str, value: Any, lo: float, hi: float, *,
                lo_inclusive: bool = True, hi_inclusive: bool = False) -> None:
  """Raises ValueError if a concrete hyperparameter is outside its range."""
  if isinstance(value, jax.core.Tracer):
    return  # Built inside a traced function: cannot check.
  prefix = name
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise TypeError(f"{prefix} must be a float, got {_describe(value)}.") from None
  if isinstance(value, bool) or math.isnan(x):
    raise TypeError(f"{prefix} must be a float, got {_describe(value)}.")
  above = x > lo if not lo_inclusive else x >= lo
  below = x <= hi if hi_inclusive else x < hi
  if not (above and below):
    interval = (("[" if lo_inclusive else "(") + f"{lo:g}, {hi:g}" +
                ("]" if hi_inclusive else ")"))
    raise ValueError(f"{prefix} must be in {interval}, got {value!r}.")


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
