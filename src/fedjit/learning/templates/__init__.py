"""Learning process templates: stages, their composition, and outputs.

Example:
  >>> process = compose_learning_process(init_fn, build_broadcast_process(t),
  ...                                    client_work, aggregator, finalizer)
"""

from fedjit.learning.templates._learning_process import (LearningAlgorithmState,
                                                         LearningProcess,
                                                         InvalidLabelsWarning,
                                                         LearningProcessOutput,
                                                         compose_learning_process)
from fedjit.learning.templates._processes import (AggregationProcess, ClientResult,
                                                  ClientWorkProcess,
                                                  DistributionProcess,
                                                  FinalizerProcess, MeasuredProcess,
                                                  MeasuredProcessOutput)
from fedjit.learning.templates._stages import (NUM_NON_FINITE_CLIENTS_KEY,
                                               ClientWeighting,
                                               build_apply_optimizer_finalizer,
                                               build_broadcast_process,
                                               build_fed_sgd_client_work,
                                               build_model_delta_client_work,
                                               client_work_from_update,
                                               drop_if_not_finite)

__all__ = ["InvalidLabelsWarning", "LearningAlgorithmState", "LearningProcess", "LearningProcessOutput",
           "compose_learning_process", "AggregationProcess", "ClientResult",
           "ClientWorkProcess", "DistributionProcess", "FinalizerProcess",
           "MeasuredProcess", "MeasuredProcessOutput", "ClientWeighting",
           "build_apply_optimizer_finalizer", "build_broadcast_process",
           "build_model_delta_client_work", "build_fed_sgd_client_work",
           "client_work_from_update", "drop_if_not_finite", "NUM_NON_FINITE_CLIENTS_KEY"]
