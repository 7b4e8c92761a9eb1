"""Ready-made model update aggregators (TFF's `tff.learning.*_aggregator`)."""

from __future__ import annotations

from fedjit.learning.aggregators._accounting import PrivacyAccountant
from fedjit.learning.aggregators._compression import compression_aggregator
from fedjit.learning.aggregators._differential_privacy import DifferentiallyPrivateFactory
from fedjit.learning.aggregators._mean import UnweightedAggregationFactory
from fedjit.learning.aggregators._zeroing import _AdaptiveZeroingFactory

__all__ = ["compression_aggregator", "dp_aggregator"]


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
  guard against corrupted updates. As in TFF, that estimate is computed
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
  return _AdaptiveZeroingFactory(factory) if zeroing else factory
