"""Ready-made model update aggregators (TFF's `tff.learning.*_aggregator`)."""

from __future__ import annotations

import math
from typing import Any

from fedjit.learning.aggregators._accounting import PrivacyAccountant
from fedjit.learning.aggregators._compression import compression_aggregator
from fedjit.learning.aggregators._differential_privacy import DifferentiallyPrivateFactory
from fedjit.learning.aggregators._mean import (MeanFactory, UnweightedAggregationFactory,
                                               UnweightedMeanFactory,
                                               WeightedAggregationFactory)
from fedjit.learning.aggregators._quantile import PrivateQuantileEstimationProcess
from fedjit.learning.aggregators._robust import clipping_factory, zeroing_factory
from fedjit.learning.aggregators._secure import SecureSumFactory

__all__ = ["compression_aggregator", "dp_aggregator", "robust_aggregator", "secure_aggregator"]


def _default_zeroing(inner: Any, secure_estimation: bool = False) -> Any:
  """TFF's default adaptive zeroing: Z = 2C + 1, C the 98th percentile of
  the clients' l-infinity norms (from 10, learning rate ln 10), which adapts
  very quickly to a value somewhat above the largest norms seen."""
  zeroing_norm = PrivateQuantileEstimationProcess.no_noise(
      initial_estimate=10.0, target_quantile=0.98, learning_rate=math.log(10.0),
      multiplier=2.0, increment=1.0, secure_estimation=secure_estimation)
  if secure_estimation:
    return zeroing_factory(zeroing_norm, inner,
                           zeroed_count_sum_factory=SecureSumFactory(1, 0))
  return zeroing_factory(zeroing_norm, inner)


def _default_clipping(inner: Any, secure_estimation: bool = False) -> Any:
  """TFF's default adaptive clipping: the 80th percentile of the clients'
  l2 norms (from 1, learning rate 0.2), a moderately high norm."""
  clipping_norm = PrivateQuantileEstimationProcess.no_noise(
      initial_estimate=1.0, target_quantile=0.8, learning_rate=0.2,
      secure_estimation=secure_estimation)
  if secure_estimation:
    return clipping_factory(clipping_norm, inner,
                            clipped_count_sum_factory=SecureSumFactory(1, 0))
  return clipping_factory(clipping_norm, inner)


def _check_flags(owner: str, **flags: Any) -> None:
  for name, value in flags.items():
    if not isinstance(value, bool):
      raise TypeError(f"{owner} expects {name} to be True or False, got {value!r}.")


def robust_aggregator(*, zeroing: bool = True, clipping: bool = True, weighted: bool = True,
                      debug_measurements_fn: Any = None
                      ) -> WeightedAggregationFactory | UnweightedAggregationFactory:
  """A mean with adaptive zeroing and adaptive clipping (TFF's
  `tff.learning.robust_aggregator`).

  Composition, with TFF's constants: `MeanFactory()` (or
  `UnweightedMeanFactory()` when not `weighted`), wrapped when `clipping`
  in `clipping_factory` with `PrivateQuantileEstimationProcess.no_noise(
  initial_estimate=1.0, target_quantile=0.8, learning_rate=0.2)` (l2
  norms), then when `zeroing` in `zeroing_factory` with
  `no_noise(10.0, 0.98, math.log(10.0), multiplier=2.0, increment=1.0)`
  (l-infinity norms). Zeroing guards against corrupted updates, clipping
  against outliers. Measurements: `zeroing=OrderedDict(clipping=mean's
  measurements, clipping_norm=, clipped_count=), zeroing_norm=,
  zeroed_count=` (with both on).

  Args:
    zeroing: whether to zero outsized values.
    clipping: whether to clip values to an adaptive l2 norm.
    weighted: a weighted mean (for `build_weighted_fed_avg`) or not.
    debug_measurements_fn: must be None: fedjit has no
      `tff.learning.add_debug_measurements` yet.

  Returns:
    A `WeightedAggregationFactory` (or an unweighted one).

  Raises:
    TypeError: if a flag is not a bool, or debug_measurements_fn is not
      None.

  Example:
    >>> trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
    ...     model, client_optimizer_fn,
    ...     model_aggregator=fedjit.learning.robust_aggregator())
  """
  _check_flags("robust_aggregator", zeroing=zeroing, clipping=clipping, weighted=weighted)
  if debug_measurements_fn is not None:
    raise TypeError(f"robust_aggregator: debug_measurements_fn must be None, got "
                    f"{debug_measurements_fn!r}; fedjit has no add_debug_measurements "
                    f"(TFF's debug measurements) yet.")
  factory = MeanFactory() if weighted else UnweightedMeanFactory()
  if clipping:
    factory = _default_clipping(factory)
  if zeroing:
    factory = _default_zeroing(factory)
  return factory


def secure_aggregator(*, zeroing: bool = True, clipping: bool = True, weighted: bool = True
                      ) -> WeightedAggregationFactory | UnweightedAggregationFactory:
  """A mean whose sums are secure sums, with adaptive zeroing and clipping
  (TFF's `tff.learning.secure_aggregator`).

  Composition, with TFF's constants: the values are summed by
  `SecureSumFactory(PrivateQuantileEstimationProcess.no_noise(
  initial_estimate=50.0, target_quantile=0.95, learning_rate=1.0,
  multiplier=2.0, secure_estimation=True))` (an adaptive per-coordinate
  bound), in `MeanFactory(value_sum_factory=..., weight_sum_factory=
  SecureSumFactory(float(2**20 - 1), 0.0))`, or, not `weighted`,
  `UnweightedMeanFactory(value_sum_factory=..., count_sum_factory=
  SecureSumFactory(1, 0))`; then TFF's default adaptive clipping and
  zeroing (see `robust_aggregator`), both with `secure_estimation=True` and
  their counts summed by `SecureSumFactory(1, 0)`. Every flow from the
  clients is a secure sum, so `fedjit.privacy_report(trainer).check()`
  passes; no measurement needs a `federated_max` (TFF's has none either).

  Weights are clipped to [0, 2**20 - 1] and quantized like any float (see
  `SecureSumFactory`: 24 bits in 32-bit JAX, a step of 1/16).

  Args:
    zeroing: whether to zero outsized values.
    clipping: whether to clip values to an adaptive l2 norm.
    weighted: a weighted mean or not.

  Returns:
    A `WeightedAggregationFactory` (or an unweighted one).

  Raises:
    TypeError: if a flag is not a bool.

  Example:
    >>> trainer = fedjit.learning.algorithms.build_weighted_fed_avg(
    ...     model, client_optimizer_fn,
    ...     model_aggregator=fedjit.learning.secure_aggregator())
    >>> fedjit.privacy_report(trainer).check()
  """
  _check_flags("secure_aggregator", zeroing=zeroing, clipping=clipping, weighted=weighted)
  clip_bound = PrivateQuantileEstimationProcess.no_noise(
      initial_estimate=50.0, target_quantile=0.95, learning_rate=1.0, multiplier=2.0,
      secure_estimation=True)
  factory = SecureSumFactory(clip_bound)
  if weighted:
    # TFF: 2**20 - 1 encodes integer-valued float weights (example counts
    # up to about a million) accurately.
    factory = MeanFactory(value_sum_factory=factory, weight_sum_factory=SecureSumFactory(
        upper_bound_threshold=float(2 ** 20 - 1), lower_bound_threshold=0.0))
  else:
    factory = UnweightedMeanFactory(value_sum_factory=factory,
                                    count_sum_factory=SecureSumFactory(1, 0))
  if clipping:
    factory = _default_clipping(factory, secure_estimation=True)
  if zeroing:
    factory = _default_zeroing(factory, secure_estimation=True)
  return factory


def dp_aggregator(noise_multiplier: float, clients_per_round: float, zeroing: bool = True, *,
                  accountant: PrivacyAccountant | None = None,
                  noise_seed: int | None = None) -> UnweightedAggregationFactory:
  """DP-FedAvg's aggregator: adaptive zeroing, adaptive clipping, Gaussian noise.

  TFF's `tff.learning.dp_aggregator`:
  `DifferentiallyPrivateFactory.gaussian_adaptive(noise_multiplier,
  clients_per_round)` (TFF's defaults: initial clip 0.1, median target,
  learning rate 0.2, clipped-count noise 0.05 · clients_per_round), wrapped,
  when `zeroing`, in TFF's adaptive zeroing: a client value whose largest
  absolute coordinate exceeds 2E + 1, E a running estimate of the 98th
  percentile of those norms (starting at 10), is replaced by zeros, as a
  guard against corrupted updates (`zeroing_factory` with
  `PrivateQuantileEstimationProcess.no_noise(10.0, 0.98, math.log(10.0),
  multiplier=2.0, increment=1.0)`, as TFF). As in TFF, that estimate is computed
  without noise, so the zeroing norm (reported as `zeroing_norm`) is not
  covered by the DP guarantee; pass `zeroing=False` when it must be.

  DP aggregators are unweighted: use it as `model_aggregator=` of
  `build_unweighted_fed_avg`.

  Args:
    noise_multiplier: the total noise multiplier σ ≥ 0.
    clients_per_round: the (expected) clients per round, > 0.
    zeroing: whether to zero outsized values first.
    accountant: a `fedjit.aggregators.PrivacyAccountant` to report ε
      in every round's measurements (under `zeroing` then
      `privacy`, or `privacy` without zeroing).
    noise_seed: an int for reproducible noise; None seeds from the OS
      CSPRNG (what a deployment must do).

  Returns:
    An `UnweightedAggregationFactory` (its `.accountant` is the bound
    accountant, or None).

  Raises:
    ValueError: for out-of-range arguments (see `gaussian_adaptive`).

  Example:
    >>> aggregator = fedjit.learning.dp_aggregator(
    ...     noise_multiplier=1.0, clients_per_round=50,
    ...     accountant=fedjit.aggregators.PrivacyAccountant(1000, delta=1e-4))
    >>> trainer = fedjit.learning.algorithms.build_unweighted_fed_avg(
    ...     model, client_optimizer_fn, model_aggregator=aggregator)
  """
  if not isinstance(zeroing, bool):
    raise TypeError(f"dp_aggregator expects zeroing to be True or False, got {zeroing!r}.")
  factory = DifferentiallyPrivateFactory.gaussian_adaptive(
      noise_multiplier, clients_per_round, accountant=accountant, noise_seed=noise_seed)
  return _default_zeroing(factory) if zeroing else factory
