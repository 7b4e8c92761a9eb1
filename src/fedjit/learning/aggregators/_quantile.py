"""Quantile estimation of client values across rounds (TFF's
`tff.aggregators.PrivateQuantileEstimationProcess`), the adaptive norm of
`clipping_factory`, `zeroing_factory` and `SecureSumFactory`.

The estimate C follows the geometric update of Andrew, Thakkar et al.
(2021, https://arxiv.org/abs/1905.03871): each round the clients report
whether their value is at most C, and with f the fraction that is,
C <- C * exp(-learning_rate * (f - target_quantile)). Without noise the
estimate is not differentially private.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

import fedjit
from fedjit.core import CLIENTS, SERVER, FederatedType, StructType, TensorType
from fedjit.learning.aggregators._noise import _number
from fedjit.templates import EstimationProcess

__all__ = ["PrivateQuantileEstimationProcess"]

FLOAT = TensorType(np.float32)
COUNT = TensorType(np.int32)


class PrivateQuantileEstimationProcess(EstimationProcess):
  """An `EstimationProcess` tracking the `target_quantile` of float32
  client values, reporting `multiplier * C + increment`.

  Build it with `PrivateQuantileEstimationProcess.no_noise(...)`, TFF's
  constructor for the no-noise estimator (TFF's other constructor takes a
  `tensorflow_privacy` query; fedjit has no noised variant yet).

  Types: `initialize: () -> float32@SERVER` (the state is the estimate C),
  `next: (<float32@SERVER, float32@CLIENTS> -> float32@SERVER)`,
  `report: (float32@SERVER -> float32@SERVER)`.

  A client value counts as below when it is <= C (the raw estimate, not the
  reported one), as in TFF. The fraction is a `federated_mean` of the 0/1
  flags, or with `secure_estimation=True` the secure sum of the flags over
  the secure sum of ones (`federated_secure_sum_bitwidth` with bit width 1
  each, so `fedjit.privacy_report` shows both as secure sums; TFF sums
  +/-0.5 floats with `SecureSumFactory(1.0)`, fedjit sums the exact
  integers). With no clients in a round the estimate is unchanged.

  Args:
    initial_estimate: C0 > 0.
    target_quantile: q in [0, 1].
    learning_rate: > 0.
    multiplier: r > 0 of the reported r * C + i.
    increment: i >= 0.
    secure_estimation: count with secure sums instead of a mean.

  Raises:
    TypeError: for a non-number argument, or secure_estimation not a bool.
    ValueError: for an argument out of its range.

  Example:
    >>> process = PrivateQuantileEstimationProcess.no_noise(
    ...     initial_estimate=1.0, target_quantile=0.5, learning_rate=0.2)
    >>> state = process.next(process.initialize(), [0.5, 2.0, 3.0, 4.0])
    >>> round(float(process.report(state)), 4)   # 1 * exp(-0.2 * (0.25 - 0.5))
    1.0513
  """

  @classmethod
  def no_noise(cls, initial_estimate: float, target_quantile: float, learning_rate: float,
               multiplier: float = 1.0, increment: float = 0.0,
               secure_estimation: bool = False) -> "PrivateQuantileEstimationProcess":
    """TFF's no-noise estimator of `multiplier * C + increment`, C the
    `target_quantile` of the clients' values (see the class docstring).

    Example:
      >>> zeroing_norm = PrivateQuantileEstimationProcess.no_noise(
      ...     10.0, 0.98, math.log(10.0), multiplier=2.0, increment=1.0)
      >>> fedjit.aggregators.zeroing_factory(zeroing_norm, fedjit.aggregators.MeanFactory())
    """
    return cls(initial_estimate, target_quantile, learning_rate, multiplier, increment,
               secure_estimation=secure_estimation)

  def __init__(self, initial_estimate: float, target_quantile: float, learning_rate: float,
               multiplier: float = 1.0, increment: float = 0.0, *,
               secure_estimation: bool = False):
    owner = "PrivateQuantileEstimationProcess.no_noise"
    e0 = _number(owner, "initial_estimate", initial_estimate, positive=True)
    target = _number(owner, "target_quantile", target_quantile, probability=True)
    lr = _number(owner, "learning_rate", learning_rate, positive=True)
    r = _number(owner, "multiplier", multiplier, positive=True)
    i = _number(owner, "increment", increment)
    if not isinstance(secure_estimation, bool):
      raise TypeError(f"{owner} expects secure_estimation to be True or False, got "
                      f"{secure_estimation!r}.")
    self._params = (e0, target, lr, r, i, secure_estimation)

    @fedjit.jax_computation
    def initial_estimate_fn():
      return jnp.float32(e0)

    @fedjit.jax_computation(FLOAT, FLOAT)
    def is_below(value, estimate):
      return (value <= estimate).astype(jnp.int32 if secure_estimation else jnp.float32)

    @fedjit.jax_computation
    def one():
      return jnp.int32(1)

    @fedjit.jax_computation(COUNT, COUNT)
    def fraction_of(count, n):
      return jnp.where(n > 0, count.astype(jnp.float32) / jnp.maximum(n, 1).astype(jnp.float32),
                       jnp.float32(target))

    @fedjit.jax_computation(FLOAT, FLOAT)
    def update(estimate, fraction):
      f = jnp.clip(fraction, 0.0, 1.0)
      return estimate * jnp.exp(-jnp.float32(lr) * (f - jnp.float32(target)))

    @fedjit.jax_computation(FLOAT)
    def affine(estimate):
      return jnp.float32(r) * estimate + jnp.float32(i)

    @fedjit.federated_computation
    def initialize_fn():
      return fedjit.federated_eval(initial_estimate_fn, SERVER)

    state_type = initialize_fn.type_signature.result

    @fedjit.federated_computation(state_type, FederatedType(FLOAT, CLIENTS))
    def next_fn(state, value):
      flags = fedjit.federated_map(is_below, (value, fedjit.federated_broadcast(state)))
      if secure_estimation:
        count = fedjit.federated_secure_sum_bitwidth(flags, 1)
        n = fedjit.federated_secure_sum_bitwidth(fedjit.federated_eval(one, CLIENTS), 1)
        fraction = fedjit.federated_map(fraction_of, (count, n))
      else:
        fraction = fedjit.federated_mean(flags)
      return fedjit.federated_map(update, (state, fraction))

    @fedjit.federated_computation(state_type)
    def report_fn(state):
      return fedjit.federated_map(affine, state)

    super().__init__(initialize_fn, next_fn, report_fn)

  def __repr__(self) -> str:
    e0, target, lr, r, i, secure = self._params
    return (f"PrivateQuantileEstimationProcess.no_noise(initial_estimate={e0}, "
            f"target_quantile={target}, learning_rate={lr}, multiplier={r}, increment={i}, "
            f"secure_estimation={secure})")


def _check_norm_process(owner: str, name: str, process: Any) -> EstimationProcess:
  """`process` if it is an `EstimationProcess` of a float32 norm: `next`
  takes `<state, float32@CLIENTS>` and returns the state, `report` returns
  float32@SERVER (TFF's checks); TypeError otherwise."""
  if not isinstance(process, EstimationProcess):
    raise TypeError(f"{owner} expects {name} to be a float or a "
                    f"fedjit.templates.EstimationProcess (such as "
                    f"fedjit.aggregators.PrivateQuantileEstimationProcess.no_noise(...)); got "
                    f"{process!r}.")
  clients = FederatedType(FLOAT, CLIENTS)
  param = process.next.type_signature.parameter
  if not (isinstance(param, StructType) and len(param) == 2
          and param[1].is_assignable_from(clients)):
    raise TypeError(f"{owner}: {name}.next must take two arguments, the state and the "
                    f"clients' norms ({clients}); its parameter type is {param}.")
  result = process.next.type_signature.result
  if not process.state_type.is_assignable_from(result):
    raise TypeError(f"{owner}: {name}.next must return only the state "
                    f"({process.state_type}); it returns {result}.")
  report = process.report.type_signature.result
  server = FederatedType(FLOAT, SERVER)
  if not report.is_assignable_from(server) or not server.is_assignable_from(report):
    raise TypeError(f"{owner}: {name}.report must return the norm as {server}; it returns "
                    f"{report}.")
  return process
