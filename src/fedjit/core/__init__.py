"""The Federated Core: types, computations, intrinsics, backends, serialization."""

from fedjit.core._backends import (Backend, ReferenceBackend, VectorizedBackend,
                                   backend, get_backend, to_jax)
from fedjit.core._computations import (Computation, FederatedComputation,
                                       JaxComputation, federated_computation,
                                       jax_computation)
from fedjit.core._errors import (ClientComputationError, FederatedOperationError,
                                 FederatedTypeError, FederatedValueError,
                                 InvalidTypeError, PlacementError,
                                 TypeNotAssignableError, TypesNotEquivalentError)
from fedjit.core._intrinsics import (federated_aggregate, federated_broadcast,
                                     federated_map, federated_mean,
                                     federated_secure_sum, federated_sum,
                                     federated_value, federated_zip,
                                     sequence_map, sequence_reduce, sequence_sum)
from fedjit.core._placements import CLIENTS, SERVER, Placement
from fedjit.core._sequence import Sequence
from fedjit.core._serialization import deserialize, serialize
from fedjit.core._types import (FederatedType, FunctionType, SequenceType,
                                StructType, TensorType, Type, infer_type, to_type)

__all__ = [
    "Backend", "ReferenceBackend", "VectorizedBackend", "backend", "get_backend",
    "to_jax", "Computation", "FederatedComputation", "JaxComputation",
    "federated_computation", "jax_computation", "ClientComputationError",
    "FederatedOperationError", "FederatedTypeError", "PlacementError",
    "FederatedValueError", "InvalidTypeError", "TypeNotAssignableError",
    "TypesNotEquivalentError",
    "federated_aggregate", "federated_broadcast", "federated_map",
    "federated_mean", "federated_secure_sum", "federated_sum", "federated_value",
    "federated_zip", "sequence_map", "sequence_reduce", "sequence_sum", "CLIENTS",
    "SERVER", "Placement", "Sequence", "deserialize", "serialize",
    "FederatedType", "FunctionType", "SequenceType", "StructType", "TensorType",
    "Type", "infer_type", "to_type",
]
