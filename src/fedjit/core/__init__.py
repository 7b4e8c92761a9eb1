"""The Federated Core: types, computations, intrinsics, backends, serialization."""

from fedjit.core._context import Backend, Prepared, backend, get_backend, register_backend
from fedjit.core.backends import ReferenceBackend, VectorizedBackend, to_jax
# Client data prepared ahead of the rounds that take it (used by fedjit.simulation).
from fedjit.core.backends.vectorized.cohorts import prepare_population
# The seam for writing a backend (see `Backend` and README "Backends").
from fedjit.core.backends.interpreter import Ops, evaluate
from fedjit.core.backends.reference import from_reference, to_reference
from fedjit.core._computations import (Computation, ComputationReturnedNoneError,
                                       FederatedComputation, JaxComputation,
                                       PolymorphicFederatedComputation, executing,
                                       federated_computation, jax_computation,
                                       param_types)
from fedjit.core._errors import (ClientComputationError, FederatedOperationError,
                                 FederatedTypeError, FederatedValueError,
                                 InvalidTypeError, PlacementError,
                                 TypeNotAssignableError, TypesNotEquivalentError)
from fedjit.core._collect import collected_type, federated_collect
from fedjit.core.backends.remote import DistributedRound, RoundTask
from fedjit.core._privacy_report import DPNoise, PrivacyReport, mark_dp_noise, privacy_report
from fedjit.core._intrinsics import (federated_aggregate,
                                     federated_broadcast, federated_eval,
                                     federated_map, federated_map_all_equal,
                                     federated_max, federated_mean,
                                     federated_min, federated_secure_modular_sum,
                                     federated_secure_sum,
                                     federated_secure_sum_bitwidth,
                                     federated_secure_select, federated_select,
                                     federated_sum,
                                     federated_value, federated_zip,
                                     sequence_map, sequence_reduce, sequence_sum)
from fedjit.core import _type_analysis as type_analysis
from fedjit.core._type_analysis import (SumIncompatibleError, check_is_sum_compatible,
                                        is_average_compatible, is_min_max_compatible,
                                        is_structure_of_floats,
                                        is_structure_of_integers, is_sum_compatible)
from fedjit.core._placements import (CLIENTS, SERVER, Placement, PlacementLiteral,
                                     uri_to_placement_literal)
from fedjit.core._sequence import Sequence
from fedjit.core import _structure as structure
from fedjit.core._ir import to_value
from fedjit.core._serialization import deserialize, serialize
# Seams for the upper layers: checking data, and a dataset for their own jax code.
from fedjit.core._values import check_value, to_sequence
from fedjit.core._types import (AbstractType, FederatedType, FunctionType,
                                PlacementType, SequenceType, StructType,
                                StructWithPythonType, TensorType, Type, build_container,
                                infer_type, struct_fields, to_type)

__all__ = [
    "Backend", "Prepared", "prepare_population", "ReferenceBackend", "VectorizedBackend", "backend", "get_backend",
    "to_jax", "register_backend", "Ops", "evaluate", "executing",
    "param_types", "to_reference", "from_reference", "Computation", "FederatedComputation", "JaxComputation",
    "PolymorphicFederatedComputation",
    "federated_computation", "jax_computation", "ClientComputationError",
    "FederatedOperationError", "FederatedTypeError", "PlacementError",
    "FederatedValueError", "InvalidTypeError", "TypeNotAssignableError",
    "TypesNotEquivalentError",
    "federated_aggregate", "federated_broadcast", "federated_map",
    "federated_mean", "federated_secure_sum", "federated_sum", "federated_value",
    "federated_zip", "sequence_map", "sequence_reduce", "sequence_sum",
    "federated_eval", "federated_select", "federated_min", "federated_max", "federated_collect",
    "PrivacyReport", "privacy_report", "collected_type", "DPNoise", "mark_dp_noise",
    "DistributedRound", "RoundTask",
    "federated_secure_select", "federated_map_all_equal",
    "federated_secure_sum_bitwidth", "federated_secure_modular_sum",
    "ComputationReturnedNoneError", "SumIncompatibleError", "type_analysis",
    "check_is_sum_compatible", "is_sum_compatible", "is_average_compatible",
    "is_min_max_compatible", "is_structure_of_floats", "is_structure_of_integers",
    "CLIENTS",
    "SERVER", "Placement", "PlacementLiteral", "uri_to_placement_literal",
    "Sequence", "deserialize", "serialize", "structure", "to_value", "check_value", "to_sequence",
    "AbstractType", "FederatedType", "FunctionType", "PlacementType", "SequenceType",
    "StructType", "StructWithPythonType", "TensorType",
    "Type", "infer_type", "to_type", "build_container", "struct_fields",
]

# What backend and aggregator authors need beyond the user API (kept out of
# `fedjit.*`, available as `fedjit.core.<name>`).
BACKEND_API = ["register_backend", "Ops", "evaluate", "executing", "param_types",
               "to_reference", "from_reference", "struct_fields", "build_container",
               "Prepared", "prepare_population", "collected_type", "DPNoise", "mark_dp_noise",
               "DistributedRound", "RoundTask"]
