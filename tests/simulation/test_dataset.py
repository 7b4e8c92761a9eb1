"""Dataset and ClientData: contents, types and errors."""

import numpy as np
import pytest

import fedjit
from fedjit.simulation import ClientData, Dataset, UnknownClientError


def _examples(n=45, seed=0):
  rng = np.random.default_rng(seed)
  return {"pixels": rng.random((n, 28, 28)).astype(np.float32),
          "label": (np.arange(n) % 10).astype(np.int32)}


def test_seed_preprocessing_gives_tff_element_spec_and_batches():
  ex = _examples()
  ds = Dataset.from_tensor_slices(ex).batch(20).map(
      lambda e: (e["pixels"].reshape(-1, 784), e["label"].reshape(-1, 1)))
  assert str(fedjit.SequenceType(ds.element_spec)) == "<float32[?,784],int32[?,1]>*"
  batches = list(ds)
  assert [b[0].shape for b in batches] == [(20, 784), (20, 784), (5, 784)]
  np.testing.assert_array_equal(batches[2][1][:, 0], ex["label"][40:])
  np.testing.assert_array_equal(batches[1][0][3], ex["pixels"][23].reshape(784))


def test_map_on_examples_vectorizes_or_falls_back():
  ex = _examples(7)
  flat = Dataset.from_tensor_slices(ex).map(lambda e: (e["pixels"].reshape(-1), e["label"]))
  assert str(flat.element_spec) == "<float32[784],int32>"
  np.testing.assert_array_equal(flat.numpy()[0][4], ex["pixels"][4].reshape(-1))
  # A function that cannot be traced by JAX (Python branching on values).
  labels = Dataset.from_tensor_slices(ex).map(lambda e: np.int32(1 if int(e["label"]) > 4 else 0))
  np.testing.assert_array_equal(labels.numpy(), (ex["label"] > 4).astype(np.int32))


def test_shuffle_repeat_take_skip():
  ds = Dataset.from_tensor_slices(np.arange(10))
  a = ds.shuffle(10, seed=3).numpy()
  assert sorted(a) == list(range(10)) and list(a) != list(range(10))
  np.testing.assert_array_equal(a, ds.shuffle(None, seed=3).numpy())
  assert list(ds.shuffle(10, seed=4).numpy()) != list(a)
  # A small buffer only moves elements locally: the first output is one of the first 3.
  firsts = {int(ds.shuffle(3, seed=s).numpy()[0]) for s in range(30)}
  assert firsts == {0, 1, 2}
  assert sorted(ds.shuffle(3, seed=1).numpy()) == list(range(10))
  assert list(ds.repeat(2).numpy()) == list(range(10)) * 2
  assert list(ds.take(3).numpy()) == [0, 1, 2] and list(ds.skip(8).numpy()) == [8, 9]
  assert len(ds.batch(4, drop_remainder=True)) == 2
  assert str(ds.batch(4, drop_remainder=True).element_spec) == "int64[4]"
  with pytest.raises(ValueError, match="finite"):
    ds.repeat(None)
  with pytest.raises(ValueError, match="batch_size"):
    ds.batch(0)


def test_dataset_is_accepted_by_federated_computations(any_backend):
  ds = Dataset.from_tensor_slices(np.arange(7, dtype=np.float32)).batch(3)
  seq = fedjit.SequenceType(ds.element_spec)

  @fedjit.federated_computation(fedjit.FederatedType(seq, fedjit.CLIENTS))
  def total(data):
    return fedjit.federated_sum(fedjit.sequence_reduce(
        data, np.float32(0), lambda acc, b: acc + b.sum()))
  assert total([ds, ds.take(1)]) == np.float32(21 + 3)


def test_client_data_from_arrays_and_splits():
  data = ClientData.from_arrays({f"w{i}": _examples(5 + i, seed=i) for i in range(6)})
  assert data.client_ids == [f"w{i}" for i in range(6)]
  assert str(data.element_type_structure) == "<label=int32,pixels=float32[28,28]>"
  assert len(data.create_tf_dataset_for_client("w2")) == 7
  everything = data.create_dataset_from_all_clients()
  assert len(everything) == sum(5 + i for i in range(6))
  train, test = data.train_test_client_split(2, seed=0)
  assert len(train) == 4 and len(test) == 2
  assert set(train.client_ids) | set(test.client_ids) == set(data.client_ids)
  assert not set(train.client_ids) & set(test.client_ids)
  tr, te = data.split_within_clients(0.2, seed=1)
  for cid in data.client_ids:
    a, b = tr.create_dataset_for_client(cid).numpy(), te.create_dataset_for_client(cid).numpy()
    n = len(data.create_dataset_for_client(cid))
    assert len(a["label"]) + len(b["label"]) == n and len(b["label"]) == round(n * 0.2)
    # The two parts are disjoint and together hold the client's examples.
    joined = np.concatenate([a["pixels"], b["pixels"]]).reshape(n, -1)
    original = data.create_dataset_for_client(cid).numpy()["pixels"].reshape(n, -1)
    assert sorted(map(tuple, joined[:, :3])) == sorted(map(tuple, original[:, :3]))
  batched = data.preprocess(lambda ds: ds.batch(4))
  assert str(batched.element_type_structure) == "<label=int32[?],pixels=float32[?,28,28]>"


def test_from_partition_and_from_clients_and_fn():
  x = np.arange(12, dtype=np.float32).reshape(6, 2)
  y = np.arange(6, dtype=np.int32)
  data = ClientData.from_partition({"x": x, "y": y}, [np.array([0, 5]), np.array([1, 2, 3])])
  np.testing.assert_array_equal(data.create_dataset_for_client("0").numpy()["y"], [0, 5])
  lazy = ClientData.from_clients_and_fn(["a", "b"], lambda cid: Dataset.from_tensor_slices(
      np.full(3, ord(cid), np.int32)))
  assert list(lazy.create_dataset_for_client("b").numpy()) == [98, 98, 98]


def test_unknown_client_id_fails_clearly():
  data = ClientData.from_arrays({"alice": np.zeros(3), "bob": np.zeros(2)})
  with pytest.raises(UnknownClientError) as e:
    data.create_dataset_for_client("carol")
  assert isinstance(e.value, KeyError)
  assert "'carol'" in str(e.value) and "'alice'" in str(e.value) and "2 clients" in str(e.value)


def test_mismatched_element_shapes_fail_against_the_models_input_spec():
  from fedjit import learning
  import jax.numpy as jnp
  import optax
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((784, 10))}, lambda p, x: x @ p["w"],
      lambda y, l: optax.softmax_cross_entropy_with_integer_labels(l, y),
      input_spec=((np.float32, [None, 784]), (np.int32, [None])))
  trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.1))
  wrong = Dataset.from_tensor_slices((np.zeros((8, 5), np.float32),
                                      np.zeros(8, np.int32))).batch(4)
  with pytest.raises(fedjit.FederatedTypeError) as e:
    trainer.next(trainer.initialize(), [wrong])
  assert "float32[?,784]" in str(e.value) and "float32[4,5]" in str(e.value)
