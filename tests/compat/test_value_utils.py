"""Port of TFF's `value_utils` tests (`ensure_federated_value`).

Source: google-parfait/federated-language,
federated_language/federated_context/value_utils_test.py.

Spelling: `value_utils.ensure_federated_value` ->
`fedjit.core._ir.ensure_federated_value` (a TFF internal; not exported at the
top level); `value_impl.to_value` -> `fedjit.to_value`;
`federated_computation.federated_computation` -> `fedjit.federated_computation`;
`computation_types.X` / `placements.X` -> `fedjit.X`; `assertRaises` ->
`pytest.raises`.

Left out: `test_get_curried` (`value_utils.get_curried` turns a function
value on a pair into a curried lambda over building blocks; fedjit has no
lambda values inside federated computations, functions are jax_computations
or function parameters).
"""

import numpy as np
import pytest

import fedjit
from fedjit.core._ir import ensure_federated_value


def test_ensure_federated_value():

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
  def _(x):
    x = fedjit.to_value(x, type_spec=None)
    ensure_federated_value(x, fedjit.CLIENTS)
    return x


def test_ensure_federated_value_wrong_placement():

  @fedjit.federated_computation(fedjit.FederatedType(np.int32, fedjit.CLIENTS))
  def _(x):
    x = fedjit.to_value(x, type_spec=None)
    with pytest.raises(TypeError):
      ensure_federated_value(x, fedjit.SERVER)
    return x


def test_ensure_federated_value_implicitly_zippable():

  @fedjit.federated_computation(fedjit.StructType((
      fedjit.FederatedType(np.int32, fedjit.CLIENTS),
      fedjit.FederatedType(np.int32, fedjit.CLIENTS),
  )))
  def _(x):
    x = fedjit.to_value(x, type_spec=None)
    ensure_federated_value(x)
    return x


def test_ensure_federated_value_fails_on_unzippable():

  @fedjit.federated_computation(fedjit.StructType((
      fedjit.FederatedType(np.int32, fedjit.CLIENTS),
      fedjit.FederatedType(np.int32, fedjit.SERVER),
  )))
  def _(x):
    x = fedjit.to_value(x, type_spec=None)
    with pytest.raises(TypeError):
      ensure_federated_value(x)
    return x


def test_ensure_federated_value_zips_to_the_federated_structure():
  """fedjit: the zipped value's type (TFF's implementation, checked by type)."""
  seen = []

  @fedjit.federated_computation(fedjit.StructType((
      fedjit.FederatedType(np.int32, fedjit.CLIENTS),
      fedjit.FederatedType(np.float32, fedjit.CLIENTS),
  )))
  def _(x):
    z = ensure_federated_value(fedjit.to_value(x, type_spec=None), fedjit.CLIENTS)
    seen.append(str(z.type_signature))
    return z

  assert seen == ['{<int32,float32>}@CLIENTS']
