"""`fedjit.simulation.datasets.TestClientData`, ported from TFF's tests of
`tff.simulation.datasets.TestClientData`
(tensorflow_federated/python/simulation/datasets/from_tensor_slices_client_data_test.py),
with their data and expected values as they are there.

Not ported: the `dataset_computation` tests (fedjit has no string-typed
computations to look a client up by id inside a computation), and the check
that `create_tf_dataset_from_all_clients()` without a seed shuffles: in fedjit
it keeps the clients in order unless given a seed.
"""

import collections
import copy

import numpy as np
import pytest

import fedjit
import fedjit.simulation.datasets
from fedjit.simulation import ClientData, Dataset, UnknownClientError
from fedjit.simulation.datasets import TestClientData

TEST_DATA = {
    'CLIENT A': [[1, 2], [3, 4], [5, 6]],
    'CLIENT B': [[10, 11]],
    'CLIENT C': [[100, 101], [200, 201]],
    'CLIENT C2': [[100, 101], [202, 203]],
}
CLIENT_ID_NOT_IN_TEST_DATA = 'CLIENT D'
TEST_DATA_NOT_DICT = [[[1, 2]], [[1.0, 2.0]]]
ExampleNamedTuple = collections.namedtuple('ExampleNamedTuple', 'x')
TEST_DATA_WITH_NAMEDTUPLES = {
    'CLIENT A': ExampleNamedTuple(x=[[1, 2], [3, 4], [5, 6]]),
}
TEST_DATA_WITH_INCONSISTENT_TYPE = {
    'CLIENT A': [[1, 2]],
    'CLIENT B': [[1.0, 2.0]],
}
TEST_DATA_WITH_TUPLES = {
    'CLIENT A': tuple([[1, 3, 5], [2, 4, 6]]),
    'CLIENT B': tuple([[10], [11]]),
    'CLIENT C': tuple([[100, 200], [101, 201]]),
    'CLIENT C2': tuple([[100, 202], [101, 203]]),
}
TEST_DATA_WITH_ORDEREDDICTS = {
    'CLIENT A':
        collections.OrderedDict(
            x=[[1, 2], [3, 4], [5, 6]],
            y=[4.0, 5.0, 6.0],
            z=['a', 'b', 'c'],
        ),
    'CLIENT B':
        collections.OrderedDict(
            x=[[10, 11]],
            y=[7.0],
            z=['d'],
        ),
    'CLIENT C':
        collections.OrderedDict(
            x=[[100, 101], [200, 201]],
            y=[8.0, 9.0],
            z=['e', 'f'],
        ),
    'CLIENT C2':
        collections.OrderedDict(
            x=[[100, 101], [202, 203]],
            y=[100.0, 200.0],
            z=['abc', 'def'],
        ),
}
TEST_DATA_WITH_PART_LIST_AND_PART_DICT = {
    'CLIENT A':
        collections.OrderedDict(
            x=[[1, 2], [3, 4], [5, 6]],
            y=[4.0, 5.0, 6.0],
            z=['a', 'b', 'c'],
        ),
    'CLIENT B': [[1.0, 2.0]],
}


def _flat(element):
  """An element as plain Python values (nested lists, tuples and dicts)."""
  if isinstance(element, dict):
    return {k: _flat(v) for k, v in element.items()}
  if isinstance(element, tuple):
    return tuple(_flat(v) for v in element)
  return np.asarray(element).tolist()


def assert_same_datasets(a_dataset, b_dataset):
  assert len(a_dataset) == len(b_dataset)
  for a, b in zip(a_dataset, b_dataset):
    assert _flat(a) == _flat(b)


@pytest.mark.parametrize('tensor_slices_dict', [
    TEST_DATA, TEST_DATA_WITH_TUPLES, TEST_DATA_WITH_ORDEREDDICTS],
    ids=['list_data', 'tuple_data', 'ordered_dict_data'])
def test_constructor_does_not_modify_in_place(tensor_slices_dict):
  copy_of_tensor_slices_dict = copy.deepcopy(tensor_slices_dict)
  TestClientData(tensor_slices_dict)
  assert tensor_slices_dict == copy_of_tensor_slices_dict
  assert all(type(a) is type(b) for a, b in zip(tensor_slices_dict.values(),
                                                copy_of_tensor_slices_dict.values()))


def test_client_data_constructs_with_correct_clients_and_types():
  tensor_slices_dict = {'a': [1, 2, 3], 'b': [4, 5]}
  client_data = TestClientData(tensor_slices_dict)
  assert sorted(client_data.client_ids) == ['a', 'b']
  assert client_data.element_type_structure == fedjit.TensorType(np.int32, ())


def test_create_tf_dataset_for_client_constructs():
  tensor_slices_dict = {'a': [1, 2, 3], 'b': [4, 5]}
  client_data = TestClientData(tensor_slices_dict)

  def as_list(dataset):
    return [x for x in dataset]

  assert as_list(client_data.create_tf_dataset_for_client('a')) == [1, 2, 3]
  assert as_list(client_data.create_tf_dataset_for_client('b')) == [4, 5]


def test_serializable_dataset_fn_constructs():
  tensor_slices_dict = {'a': [1, 2, 3], 'b': [4, 5]}
  client_data = TestClientData(tensor_slices_dict)
  assert [x for x in client_data.serializable_dataset_fn('a')] == [1, 2, 3]


def test_where_client_data_is_tensors():
  client_data = TestClientData(TEST_DATA)
  assert sorted(TEST_DATA.keys()) == sorted(client_data.client_ids)
  assert client_data.element_type_structure == fedjit.TensorType(np.int32, (2,))
  for client_id in TEST_DATA:
    assert_same_datasets(Dataset.from_tensor_slices(TEST_DATA[client_id]),
                         client_data.create_tf_dataset_for_client(client_id))


def test_where_client_data_is_tuples():
  client_data = TestClientData(TEST_DATA_WITH_TUPLES)
  assert sorted(TEST_DATA_WITH_TUPLES.keys()) == sorted(client_data.client_ids)
  assert client_data.element_type_structure == fedjit.to_type(
      (fedjit.TensorType(np.int32, ()), fedjit.TensorType(np.int32, ())))
  for client_id in TEST_DATA_WITH_TUPLES:
    assert_same_datasets(Dataset.from_tensor_slices(TEST_DATA_WITH_TUPLES[client_id]),
                         client_data.create_tf_dataset_for_client(client_id))


def test_where_client_data_is_ordered_dicts():
  client_data = TestClientData(TEST_DATA_WITH_ORDEREDDICTS)
  assert sorted(TEST_DATA_WITH_ORDEREDDICTS.keys()) == sorted(client_data.client_ids)
  spec = client_data.element_type_structure
  assert spec.names() == ('x', 'y', 'z')
  assert spec['x'] == fedjit.TensorType(np.int32, (2,))
  assert spec['y'] == fedjit.TensorType(np.float32, ())
  # TFF's tf.string is a NumPy string here, as wide as the longest of all clients.
  assert spec['z'].shape == () and spec['z'].dtype == np.dtype('<U3')
  for client_id in TEST_DATA_WITH_ORDEREDDICTS:
    assert_same_datasets(Dataset.from_tensor_slices(TEST_DATA_WITH_ORDEREDDICTS[client_id]),
                         client_data.create_tf_dataset_for_client(client_id))
  # One element type for every client, so that they can be joined.
  everything = client_data.create_tf_dataset_from_all_clients()
  assert everything.numpy()['z'].tolist() == ['a', 'b', 'c', 'd', 'e', 'f', 'abc', 'def']


def test_raises_error_if_empty_client_found():
  with pytest.raises(ValueError):
    TestClientData({'a': []})


def test_init_raises_error_if_slices_is_not_dict():
  with pytest.raises(TypeError):
    TestClientData(TEST_DATA_NOT_DICT)


def test_init_raises_error_if_slices_are_namedtuples():
  with pytest.raises(TypeError):
    TestClientData(TEST_DATA_WITH_NAMEDTUPLES)


def test_init_raises_error_if_slices_are_inconsistent_type():
  with pytest.raises(TypeError):
    TestClientData(TEST_DATA_WITH_INCONSISTENT_TYPE)


def test_init_raises_error_if_slices_are_part_list_and_part_dict():
  with pytest.raises(TypeError):
    TestClientData(TEST_DATA_WITH_PART_LIST_AND_PART_DICT)


def test_shuffle_client_ids():
  tensor_slices_dict = {'a': [1, 1], 'b': [2, 2, 2], 'c': [3], 'd': [4, 4]}
  all_examples = [1, 1, 2, 2, 2, 3, 4, 4]
  client_data = TestClientData(tensor_slices_dict)

  def get_flat_dataset(seed):
    ds = client_data.create_tf_dataset_from_all_clients(seed=seed)
    return [int(x) for x in ds]

  d1 = get_flat_dataset(123)
  d2 = get_flat_dataset(456)
  assert d1 != d2  # Different random seeds, different order.
  assert sorted(d1) == all_examples
  assert sorted(d2) == all_examples
  assert get_flat_dataset(123) == d1  # and the same seed, the same order


def test_unknown_client_id_raises():
  client_data = TestClientData(TEST_DATA)
  with pytest.raises(UnknownClientError, match=repr(CLIENT_ID_NOT_IN_TEST_DATA)):
    client_data.create_tf_dataset_for_client(CLIENT_ID_NOT_IN_TEST_DATA)


# ------------------------------------------------ fedjit's additions

def test_client_data_keyword_with_datasets_as_the_seed_writes_it():
  def create_tf_dataset_for_client(client_id):
    return Dataset.from_tensor_slices(({'x': [1.0, 2.0, 3.0]}, {'y': [2.0, 4.0, 6.0]}))
  ids = ['client1', 'client2']
  data = fedjit.simulation.datasets.TestClientData(
      client_data={cid: create_tf_dataset_for_client(cid) for cid in ids})
  assert isinstance(data, ClientData) and data.client_ids == ids
  assert data.element_spec == data.element_type_structure
  assert str(data.element_spec) == '<<x=float32>,<y=float32>>'
  one = TestClientData(client_data={'client1': create_tf_dataset_for_client('client1')})
  everything = one.create_tf_dataset_from_all_clients()
  assert everything.as_elements() == [({'x': 1.0}, {'y': 2.0}), ({'x': 2.0}, {'y': 4.0}),
                                      ({'x': 3.0}, {'y': 6.0})]
  assert len(data.create_tf_dataset_from_all_clients()) == 6
  batched = data.preprocess(lambda ds: ds.batch(2))
  assert str(batched.element_spec) == '<<x=float32[?]>,<y=float32[?]>>'


def test_datasets_and_tensor_slices_mix_when_their_types_agree():
  data = TestClientData({'a': Dataset.from_tensor_slices([1.0, 2.0]), 'b': [3.0]})
  assert [list(map(float, d)) for d in data.datasets()] == [[1.0, 2.0], [3.0]]
  with pytest.raises(TypeError) as e:
    TestClientData({'a': Dataset.from_tensor_slices([1.0, 2.0]).batch(2), 'b': [3.0]})
  assert "'a' has float32[?]" in str(e.value) and "'b' has float32" in str(e.value)
  with pytest.raises(ValueError, match="No data found for client 'e'"):
    TestClientData({'e': Dataset.from_tensor_slices([1.0]).take(0)})


def test_errors_say_what_to_do():
  with pytest.raises(TypeError, match='not both'):
    TestClientData({'a': [1]}, client_data={'a': [1]})
  with pytest.raises(ValueError, match='at least one client'):
    TestClientData({})
  with pytest.raises(TypeError, match=r'_asdict\(\)'):
    TestClientData(TEST_DATA_WITH_NAMEDTUPLES)
  with pytest.raises(TypeError, match="client 'CLIENT A' gives a dict and client 'CLIENT B'"):
    TestClientData(TEST_DATA_WITH_PART_LIST_AND_PART_DICT)
  with pytest.raises(TypeError, match="'CLIENT A' has int32.2. and client 'CLIENT B' has float32"):
    TestClientData(TEST_DATA_WITH_INCONSISTENT_TYPE)
  with pytest.raises(TypeError, match='a set'):
    TestClientData({'a': {1, 2}})


def test_datasets_module_lists_its_loaders_and_test_client_data():
  names = dir(fedjit.simulation.datasets)
  for name in ('TestClientData', 'ClientData', 'emnist', 'shakespeare', 'mnist',
               'fashion_mnist', 'digits', 'synthetic', 'leaf'):
    assert name in names
  assert fedjit.simulation.datasets.ClientData is ClientData
  with pytest.raises(AttributeError, match='no attribute'):
    fedjit.simulation.datasets.not_a_loader
