"""Aggregators: factories whose `create` gives an `AggregationProcess`.

The same objects are `fedjit.aggregators` (TFF's `tff.aggregators`).

Example:
  >>> trainer = build_weighted_fed_avg(model, client_optimizer_fn,
  ...                                  model_aggregator=MeanFactory())
"""

from fedjit.learning.aggregators._accounting import PrivacyAccountant
from fedjit.learning.aggregators._compression import StochasticQuantizationFactory
from fedjit.learning.aggregators._differential_privacy import (DifferentiallyPrivateFactory,
                                                               adaptive_clip_noise_params)
from fedjit.learning.aggregators._distributed_dp import DistributedDpSumFactory
from fedjit.learning.aggregators._local_dp import LocalGaussianFactory
from fedjit.learning.aggregators._mean import (MeanFactory, SumFactory,
                                               UnweightedAggregationFactory,
                                               UnweightedMeanFactory,
                                               WeightedAggregationFactory)
from fedjit.learning.aggregators._robust import (BucketingFactory, BulyanFactory,
                                                 CenteredClippingFactory,
                                                 CoordinateMedianFactory,
                                                 GeometricMedianFactory, KrumFactory,
                                                 NearestNeighborMixingFactory,
                                                 TrimmedMeanFactory, clipping_factory,
                                                 zeroing_factory)
from fedjit.learning.aggregators._secure import SecureModularSumFactory, SecureSumFactory
from fedjit.learning.aggregators._quantile import PrivateQuantileEstimationProcess
from fedjit.learning.aggregators._validation import UpdateValidationFactory

__all__ = ["MeanFactory", "SumFactory", "UnweightedMeanFactory",
           "WeightedAggregationFactory", "UnweightedAggregationFactory",
           "DifferentiallyPrivateFactory", "PrivacyAccountant", "adaptive_clip_noise_params",
           "CoordinateMedianFactory", "TrimmedMeanFactory", "KrumFactory", "BulyanFactory",
           "GeometricMedianFactory", "CenteredClippingFactory", "NearestNeighborMixingFactory",
           "BucketingFactory", "clipping_factory", "zeroing_factory", "LocalGaussianFactory",
           "SecureSumFactory", "SecureModularSumFactory", "StochasticQuantizationFactory",
           "UpdateValidationFactory", "DistributedDpSumFactory",
           "PrivateQuantileEstimationProcess"]
