"""TFF's `schedule_learning_rate`: a learning rate indexed by calls to `next`."""

from __future__ import annotations

import collections
from typing import Any, Callable, Mapping

import jax.numpy as jnp

from fedjit.learning.optimizers._optimizer import (LEARNING_RATE_KEY, Optimizer, State,
                                                   _describe)

__all__ = ["schedule_learning_rate"]


def schedule_learning_rate(optimizer: Optimizer,
                           schedule_fn: Callable[[Any], Any]) -> Optimizer:
  """An optimizer whose `i`-th step (from 0) uses `schedule_fn(i)` (TFF's).

  The state is `OrderedDict(round_num=int32, optimizer=<inner state>)`, and
  the inner state's `learning_rate` is replaced by `schedule_fn(round_num)`
  after every step, as in TFF. As a server optimizer it steps once per
  round, so `i` is the round; as a client optimizer, whose state starts anew
  each round, `i` counts the client's local steps. (To follow the federated
  round on clients too, pass the schedule as the builder's learning rate:
  `build_sgdm(learning_rate=schedule)`.)

  Args:
    optimizer: a `fedjit.learning.optimizers.Optimizer` whose state holds
      `learning_rate` (every fedjit builder's does).
    schedule_fn: a traceable function of the int32 step count returning the
      learning rate, e.g. `lambda i: jnp.where(i < 2, 0.1, 0.01)` or an optax
      schedule.

  Returns:
    An `Optimizer`.

  Raises:
    TypeError: if `optimizer` is not a fedjit `Optimizer` (convert a Keras or
      optax optimizer with `as_optimizer` first).
    KeyError: from `initialize`, if the optimizer's state has no
      `learning_rate`.

  Example:
    >>> opt = schedule_learning_rate(build_sgdm(1.0), lambda i: 0.1 * 0.5**i)
    >>> state = opt.initialize(jax.ShapeDtypeStruct((), np.float32))
    >>> state, w = opt.next(state, np.float32(1.0), np.float32(1.0))   # lr 0.1
  """
  if not isinstance(optimizer, Optimizer):
    raise TypeError(
        f"schedule_learning_rate expects a fedjit.learning.optimizers.Optimizer "
        f"(e.g. build_sgdm(1.0)), got {_describe(optimizer)}. Convert a Keras or optax "
        f"optimizer with as_optimizer(...) first.")
  if not callable(schedule_fn):
    raise TypeError(f"schedule_learning_rate expects a function of the step count, got "
                    f"{_describe(schedule_fn)}.")
  return _ScheduledLROptimizer(optimizer, schedule_fn)


class _ScheduledLROptimizer(Optimizer):
  """The optimizer of `schedule_learning_rate`."""

  def __init__(self, optimizer: Optimizer, schedule_fn: Callable[[Any], Any]):
    super().__init__(None, None, f"scheduled_{optimizer.name}")
    self._optimizer = optimizer
    self._schedule_fn = schedule_fn

  def _learning_rate(self, round_num: Any) -> Any:
    return jnp.asarray(self._schedule_fn(round_num), jnp.float32)

  def initialize(self, specs: Any) -> State:
    optimizer_state = self._optimizer.initialize(specs)
    _check_lr_exists(optimizer_state)
    round_num = jnp.asarray(0, jnp.int32)
    optimizer_state = collections.OrderedDict(optimizer_state)
    optimizer_state[LEARNING_RATE_KEY] = self._learning_rate(round_num)
    return collections.OrderedDict(round_num=round_num, optimizer=optimizer_state)

  def next(self, state: State, weights: Any, gradients: Any) -> tuple[State, Any]:
    optimizer_state, weights = self._optimizer.next(state["optimizer"], weights, gradients)
    return self._advance(state, optimizer_state), weights

  def _update(self, grads: Any, state: State, params: Any,
              learning_rate: Any) -> tuple[Any, State]:
    del learning_rate  # The schedule decides.
    updates, optimizer_state = self._optimizer._update(  # pylint: disable=protected-access
        grads, state["optimizer"], params, None)
    return updates, self._advance(state, optimizer_state)

  def _advance(self, state: State, optimizer_state: Mapping[str, Any]) -> State:
    round_num = state["round_num"] + 1
    optimizer_state = collections.OrderedDict(optimizer_state)
    optimizer_state[LEARNING_RATE_KEY] = self._learning_rate(round_num)
    return collections.OrderedDict(round_num=round_num, optimizer=optimizer_state)


def _check_lr_exists(optimizer_state: Any) -> None:
  if not (isinstance(optimizer_state, Mapping) and LEARNING_RATE_KEY in optimizer_state):
    keys = list(optimizer_state) if isinstance(optimizer_state, Mapping) else None
    raise KeyError(
        f"An optimizer to be scheduled must have learning rate under the "
        f"'{LEARNING_RATE_KEY}' key (LEARNING_RATE_KEY) in its state; its state has "
        f"{'keys ' + str(keys) if keys is not None else _describe(optimizer_state)}. "
        f"(Scheduling an already scheduled optimizer has this error: schedule once.)")
