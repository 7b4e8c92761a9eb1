"""Dataset and ClientData: contents, types and errors."""

import collections

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
  assert str(ds.batch(4, drop_remainder=True).element_spec) == "int32[4]"  # as JAX computes it
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


def test_map_keeps_64_bit_values_and_dtypes():
  import jax
  import jax.numpy as jnp
  big = np.array([2**40, -(2**53) + 1], np.int64)
  # Expected values by Python integer arithmetic.
  out = Dataset.from_tensor_slices(big).map(lambda x: x + 1).numpy()
  assert out.dtype == np.int64
  assert out.tolist() == [2**40 + 1, -(2**53) + 2]
  # float64 keeps its precision (1 + 2**-40 is 1.0 in float32); int32 and
  # float32 columns next to 64-bit ones stay 32-bit.
  mixed = Dataset.from_tensor_slices({
      "f": np.array([1.0, 2.0]), "i": np.array([3, 4], np.int64),
      "p": np.ones((2, 3), np.float32), "l": np.array([5, 6], np.int32)})
  m = mixed.map(lambda e: {"f": e["f"] + 2.0**-40, "i": e["i"] * 2**33,
                           "p": e["p"] * 2, "l": e["l"] + 1}).numpy()
  assert {k: v.dtype for k, v in m.items()} == {
      "f": np.float64, "i": np.int64, "p": np.float32, "l": np.int32}
  assert m["f"].tolist() == [1.0 + 2.0**-40, 2.0 + 2.0**-40]
  assert m["i"].tolist() == [3 * 2**33, 4 * 2**33]
  np.testing.assert_array_equal(m["p"], np.full((2, 3), 2.0, np.float32))
  # Batched datasets, with jnp code in the function.
  b = Dataset.from_tensor_slices(big).batch(2).map(lambda x: jnp.reshape(x, (-1, 1)) - 1)
  assert b.numpy().dtype == np.int64 and b.numpy()[:, 0].tolist() == [2**40 - 1, -(2**53)]
  # The example-by-example fallback (a function JAX cannot trace).
  fb = Dataset.from_tensor_slices(big).map(lambda x: x + 1 if int(x) > 0 else x - 1).numpy()
  assert fb.dtype == np.int64 and fb.tolist() == [2**40 + 1, -(2**53)]
  # 64-bit mode is switched on only inside map: outside, JAX is 32-bit again.
  assert not jax.config.jax_enable_x64
  assert jnp.asarray(np.int64(1)).dtype == jnp.int32
  # All-32-bit data keep their dtypes.
  f32 = Dataset.from_tensor_slices(np.arange(4, dtype=np.float32)).map(lambda x: x / 2).numpy()
  assert f32.dtype == np.float32 and f32.tolist() == [0.0, 0.5, 1.0, 1.5]


def test_create_dataset_from_all_clients_keeps_order_and_content():
  rng = np.random.default_rng(5)
  sizes = [3, 0, 1, 4] + [2] * 300  # an empty client, and many small ones
  ids = [f"k{i:03d}" for i in range(len(sizes))]
  arrays = {cid: {"x": rng.normal(size=(n, 2)).astype(np.float32),
                  "y": np.full(n, i, np.int64)} for i, (cid, n) in enumerate(zip(ids, sizes))}
  data = ClientData.from_arrays(arrays)
  everything = data.create_dataset_from_all_clients().numpy()
  # Reference: the clients' rows one after another, in client order.
  expected_y = [i for i, n in enumerate(sizes) for _ in range(n)]
  assert everything["y"].tolist() == expected_y
  np.testing.assert_array_equal(everything["x"],
                                np.concatenate([arrays[c]["x"] for c in ids]))
  # With a seed the clients come in a random order, each client's rows together.
  shuffled = data.create_dataset_from_all_clients(seed=3).numpy()["y"].tolist()
  assert sorted(shuffled) == expected_y and shuffled != expected_y
  runs = [k for j, k in enumerate(shuffled) if j == 0 or shuffled[j - 1] != k]
  assert len(runs) == len(set(runs)) == len(ids) - 1  # contiguous blocks; the empty one absent
  assert all(shuffled.count(k) == sizes[k] for k in runs)
  # Batched clients: their batches, in order.
  batched = data.preprocess(lambda ds: ds.batch(2)).create_dataset_from_all_clients()
  assert batched.is_batched and len(batched) == 2 + 1 + 2 + 300
  assert batched.numpy()["y"].tolist() == expected_y
  assert str(batched.element_spec) == "<x=float32[?,2],y=int32[?]>"  # as JAX computes int64
  # Mixed element types cannot be joined.
  odd = ClientData.from_arrays({"a": {"x": np.zeros(2, np.float32)},
                                "b": {"x": np.zeros(2, np.int32)}})
  with pytest.raises(TypeError, match="float32.*int32"):
    odd.create_dataset_from_all_clients()


def test_filter_clients():
  data = ClientData.from_arrays({f"c{i}": np.arange(i + 1) for i in range(6)})
  even = data.filter_clients(lambda cid: int(cid[1:]) % 2 == 0)
  assert even.client_ids == ["c0", "c2", "c4"] and len(even) == 3
  assert "c1" not in even and "c2" in even
  assert even.create_dataset_for_client("c4").numpy().tolist() == [0, 1, 2, 3, 4]
  with pytest.raises(UnknownClientError, match="'c3'"):
    even.create_dataset_for_client("c3")
  assert str(even.element_type_structure) == "int32"  # as JAX computes int64
  with pytest.raises(ValueError, match="kept no client"):
    data.filter_clients(lambda cid: False)


def test_numpy_default_dtypes_give_a_spec_a_model_accepts():
  # np.random.rand and np.arange make float64 and int64 columns; JAX (64-bit
  # mode off) computes in float32 and int32, and the spec says so, so it can
  # be a model's input_spec and the round trains.
  import jax.numpy as jnp
  import optax
  from fedjit import learning
  x = np.random.default_rng(0).random((40, 3))
  y = np.arange(40) % 2
  ds = Dataset.from_tensor_slices((x, y)).batch(5)
  assert str(ds.element_spec) == "<float32[?,3],int32[?]>"
  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((3, 2))}, lambda p, xb: xb @ p["w"],
      lambda yb, logits: optax.softmax_cross_entropy_with_integer_labels(logits, yb),
      input_spec=ds.element_spec)
  trainer = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.1))
  out = trainer.next(trainer.initialize(), [ds, ds])
  assert out.metrics["client_work"]["train"]["num_examples"] == 80
  # Loss of zero weights on two classes is log(2).
  np.testing.assert_allclose(out.metrics["client_work"]["train"]["loss"], np.log(2), rtol=1e-2)


# --------------------------------------------- from_tensor_slices, as tf.data

# The cases of tf.data's own from_tensor_slices tests
# (tensorflow/python/data/kernel_tests/from_tensor_slices_test.py), with
# their inputs and expected values as they are there.

def test_from_tensor_slices_tuple_of_arrays_tf_case():
  components = (
      np.tile(np.array([[1], [2], [3], [4]]), 20),
      np.tile(np.array([[12], [13], [14], [15]]), 22),
      np.array([37.0, 38.0, 39.0, 40.0]),
  )
  dataset = Dataset.from_tensor_slices(components)
  assert [t.shape for t in dataset.element_spec] == [c.shape[1:] for c in components]
  results = dataset.as_elements()
  assert len(results) == 4
  for i in range(4):
    for component, result_component in zip(components, results[i]):
      np.testing.assert_array_equal(component[i], result_component)


def test_from_tensor_slices_with_dict_tf_case():
  components = {"foo": [1, 2, 3], "bar": [[4.0], [5.0], [6.0]]}
  dataset = Dataset.from_tensor_slices(components)
  assert dataset.element_spec["foo"] == fedjit.TensorType(np.int32, ())
  assert dataset.element_spec["bar"] == fedjit.TensorType(np.float32, (1,))
  results = dataset.as_elements()
  assert len(results) == 3
  for i in range(3):
    assert components["foo"][i] == results[i]["foo"]
    assert components["bar"][i] == results[i]["bar"]
  assert results[0]["foo"].dtype == np.int32 and results[0]["bar"].dtype == np.float32


def test_from_tensor_slices_with_uint_dtypes_tf_case():
  components = (
      np.tile(np.array([[0], [1]], dtype=np.uint8), 2),
      np.tile(np.array([[2], [256]], dtype=np.uint16), 2),
      np.tile(np.array([[4], [65536]], dtype=np.uint32), 2),
      np.tile(np.array([[8], [4294967296]], dtype=np.uint64), 2),
  )
  expected_output = [tuple([c[i] for c in components]) for i in range(2)]
  dataset = Dataset.from_tensor_slices(components)
  # NumPy arrays keep their dtypes (the spec reports uint64 as JAX computes it).
  assert [np.asarray(c).dtype for c in dataset.as_elements()[0]] == [
      np.uint8, np.uint16, np.uint32, np.uint64]
  for expected, got in zip(expected_output, dataset.as_elements()):
    for e, g in zip(expected, got):
      np.testing.assert_array_equal(e, g)


def test_from_tensor_slices_lists_and_multiple_components_tf_cases():
  assert Dataset.from_tensor_slices([1, 2, 3]).as_elements() == [1, 2, 3]  # testOneDimensionalArray
  two = Dataset.from_tensor_slices([[1, 2], [3, 4]])  # testTwoDimensionalArray
  assert [e.tolist() for e in two.as_elements()] == [[1, 2], [3, 4]]
  multi = Dataset.from_tensor_slices(([1, 2], [3, 4], [5, 6]))  # testMultipleComponents
  assert [tuple(int(v) for v in e) for e in multi.as_elements()] == [(1, 3, 5), (2, 4, 6)]
  d = Dataset.from_tensor_slices({"a": [1, 2], "b": [3, 4]})  # testDictionary
  assert [{k: int(v) for k, v in e.items()} for e in d.as_elements()] == [
      {"a": 1, "b": 3}, {"a": 2, "b": 4}]
  assert Dataset.from_tensor_slices([42]).as_elements() == [42]  # testName
  with pytest.raises(ValueError):  # testFromTensorSlicesEmptyComponent
    Dataset.from_tensor_slices(())


def test_from_tensor_slices_python_values_get_tf_dtypes():
  assert str(Dataset.from_tensor_slices([1.0, 2.0, 3.0]).element_spec) == "float32"
  assert Dataset.from_tensor_slices([1.0, 2.0]).numpy().dtype == np.float32
  assert Dataset.from_tensor_slices([1, 2]).numpy().dtype == np.int32
  assert Dataset.from_tensor_slices([2**40, 1]).numpy().dtype == np.int64  # does not fit int32
  assert Dataset.from_tensor_slices([True, False]).numpy().dtype == np.bool_
  assert Dataset.from_tensor_slices([1, 2.5]).numpy().tolist() == [1.0, 2.5]
  strings = Dataset.from_tensor_slices(["a", "bc"])
  assert strings.numpy().tolist() == ["a", "bc"]
  # NumPy and JAX arrays keep their dtypes; lists of arrays are stacked.
  assert Dataset.from_tensor_slices(np.arange(3, dtype=np.int16)).numpy().dtype == np.int16
  import jax.numpy as jnp
  assert Dataset.from_tensor_slices(jnp.arange(3.0)).numpy().tolist() == [0.0, 1.0, 2.0]
  stacked = Dataset.from_tensor_slices([np.zeros(2, np.float32), np.ones(2, np.float32)])
  assert str(stacked.element_spec) == "float32[2]" and len(stacked) == 2


def test_from_tensor_slices_nested_dicts_tuples_and_namedtuples():
  ds = Dataset.from_tensor_slices(({"x": [1.0, 2.0, 3.0]}, {"y": [2.0, 4.0, 6.0]}))
  assert str(ds.element_spec) == "<<x=float32>,<y=float32>>"
  assert ds.as_elements()[1] == ({"x": 2.0}, {"y": 4.0})
  nested = Dataset.from_tensor_slices({"a": {"b": [[1, 2], [3, 4]], "c": ([5, 6], [7.0, 8.0])}})
  assert str(nested.element_spec) == "<a=<b=int32[2],c=<int32,float32>>>"
  second = nested.as_elements()[1]
  assert second["a"]["b"].tolist() == [3, 4] and second["a"]["c"] == (6, 8.0)
  Point = collections.namedtuple("Point", ["x", "y"])
  points = Dataset.from_tensor_slices(Point(x=[1.0, 2.0], y=[3, 4]))
  first = points.as_elements()[0]
  assert isinstance(first, Point) and first.x == 1.0 and first.y == 3
  ordered = Dataset.from_tensor_slices(collections.OrderedDict(z=[1], a=[2]))
  assert list(ordered.as_elements()[0]) == ["z", "a"]  # an OrderedDict keeps its order
  # The input is not changed.
  data = {"x": [1.0, 2.0]}
  Dataset.from_tensor_slices(data)
  assert data == {"x": [1.0, 2.0]}


def test_from_tensor_slices_errors_are_clear():
  with pytest.raises(ValueError, match=r"scalar \(shape \(\)\).*from_tensors"):
    Dataset.from_tensor_slices(1.0)
  with pytest.raises(ValueError, match=r"component \['x'\] is a scalar"):
    Dataset.from_tensor_slices({"x": 1.0, "y": [1.0]})
  with pytest.raises(ValueError) as e:
    Dataset.from_tensor_slices(({"x": [1.0, 2.0, 3.0]}, {"y": [2.0, 4.0]}))
  assert "component [0]['x'] has 3 and component [1]['y'] has 2" in str(e.value)
  with pytest.raises(ValueError, match="rectangular"):
    Dataset.from_tensor_slices([[1, 2], [3]])
  with pytest.raises(TypeError, match="dict of lists"):
    Dataset.from_tensor_slices([{"x": 1.0}, {"x": 2.0}])
  with pytest.raises(TypeError, match="is None"):
    Dataset.from_tensor_slices({"x": None})
  with pytest.raises(TypeError, match="Datasets of datasets"):
    Dataset.from_tensor_slices([Dataset.from_tensor_slices([1.0])])


def test_from_tensors_is_one_element():
  ds = Dataset.from_tensors({"x": [1.0, 2.0], "n": 3})
  assert str(ds.element_spec) == "<n=int32,x=float32[2]>" and len(ds) == 1
  (element,) = ds.as_elements()
  assert element["x"].tolist() == [1.0, 2.0] and element["n"] == 3
  assert Dataset.from_tensors(5.0).as_elements() == [5.0]
  with pytest.raises(ValueError, match="at least one component"):
    Dataset.from_tensors(())


def test_from_batches_takes_lists_and_checks_batches():
  ds = Dataset.from_batches([([1.0, 2.0], [0, 1]), ([3.0], [1])])
  assert str(ds.element_spec) == "<float32[?],int32[?]>" and len(ds) == 2
  assert ds.num_examples == 3
  with pytest.raises(ValueError, match="from_batches.*scalar"):
    Dataset.from_batches([(1.0, [2.0])])


def test_client_data_element_spec_is_element_type_structure():
  data = ClientData.from_arrays({"a": {"x": [1.0, 2.0]}, "b": {"x": [3.0]}})
  assert data.element_spec == data.element_type_structure
  assert str(data.element_spec) == "<x=float32>"
  assert data.serializable_dataset_fn("b").numpy()["x"].tolist() == [3.0]


def test_as_keras_dataset_feeds_fit_and_evaluate_for_several_epochs_without_warnings():
  import warnings

  import keras
  x = np.arange(20, dtype=np.float32).reshape(10, 2) / 10
  y = (x.sum(1) > 1).astype(np.int32)
  ds = Dataset.from_tensor_slices((x, y)).batch(4)
  keras_ds = ds.as_keras_dataset()
  assert len(keras_ds) == 3
  np.testing.assert_array_equal(keras_ds[2][0], x[8:])
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
  model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    history = model.fit(keras_ds, epochs=2, verbose=0)
    loss = model.evaluate(keras_ds, verbose=0)
  assert len(history.history["loss"]) == 2
  logits = np.asarray(model(x))
  expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(10), y])  # a NumPy CE
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  with pytest.raises(TypeError, match=r"needs a batched dataset.*\.batch\(batch_size\)"):
    Dataset.from_tensor_slices((x, y)).as_keras_dataset()
