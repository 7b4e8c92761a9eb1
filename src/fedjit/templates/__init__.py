"""Templates for stateful federated processes.

Example:
  >>> process = fedjit.templates.IterativeProcess(initialize_fn, next_fn)
  >>> fedjit.templates.is_stateful(process)
  True
"""

from fedjit.templates._errors import (TemplateInitFnParamNotEmptyError,
                                      TemplateNextFnNumArgsError,
                                      TemplateNotMeasuredProcessOutputError,
                                      TemplatePlacementError,
                                      TemplateStateNotAssignableError)
from fedjit.templates._estimation_process import EstimateNotAssignableError, EstimationProcess
from fedjit.templates._iterative_process import IterativeProcess, is_stateful
from fedjit.templates._measured_process import MeasuredProcess, MeasuredProcessOutput

__all__ = ["IterativeProcess", "is_stateful", "MeasuredProcess", "MeasuredProcessOutput",
           "EstimationProcess", "EstimateNotAssignableError",
           "TemplateInitFnParamNotEmptyError",
           "TemplateStateNotAssignableError", "TemplateNextFnNumArgsError",
           "TemplateNotMeasuredProcessOutputError", "TemplatePlacementError"]
