"""LEAF JSON folders: conversion to arrays, validation, train/test folders."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from fedjit.simulation.datasets import leaf


def _write(path: pathlib.Path, users, user_data, num_samples=None, **extra):
  path.parent.mkdir(parents=True, exist_ok=True)
  counts = [len(user_data[u]["y"]) for u in users] if num_samples is None else num_samples
  path.write_text(json.dumps({"users": users, "num_samples": counts,
                              "user_data": user_data, **extra}))
  return path


def _pixels(seed, n, d=6):
  return np.random.default_rng(seed).random((n, d)).round(3).tolist()


@pytest.fixture
def femnist(tmp_path):
  """A FEMNIST-like LEAF tree: data/train/*.json and data/test/*.json."""
  root = tmp_path / "femnist" / "data"
  data = {"f0": {"x": _pixels(0, 3), "y": [4, 0, 61]},
          "f1": {"x": [[0, 1, 1, 0, 0, 1]], "y": [7]},  # integral pixels in JSON
          "f9": {"x": [], "y": []}}  # in user_data only, as LEAF's split leaves it
  _write(root / "train" / "all_data_0_niid_05_keep_0_train_9.json", ["f0", "f1"], data,
         hierarchies=["a", "b"])
  _write(root / "train" / "all_data_1_niid_05_keep_0_train_9.json", ["f2", "f3"],
         {"f2": {"x": _pixels(2, 2), "y": [1, 2]}, "f3": {"x": [], "y": []}})
  _write(root / "test" / "all_data_0_niid_05_keep_0_test_9.json", ["f0", "f2"],
         {"f0": {"x": _pixels(5, 1), "y": [3]}, "f2": {"x": _pixels(6, 1), "y": [9]}})
  return root, data


def test_femnist_like(femnist):
  root, data = femnist
  train, test = leaf.load_data(root)
  assert train.client_ids == ["f0", "f1", "f2"]  # files sorted; f3 has no samples
  assert test.client_ids == ["f0", "f2"]
  assert str(train.element_type_structure) == "<x=float32[6],y=int32>"
  f0 = train.create_dataset_for_client("f0").numpy()
  np.testing.assert_array_equal(f0["x"], np.array(data["f0"]["x"], np.float32))
  np.testing.assert_array_equal(f0["y"], [4, 0, 61])
  f1 = train.create_dataset_for_client("f1").numpy()
  assert f1["x"].dtype == np.float32 and f1["y"].dtype == np.int32  # one dtype per key
  np.testing.assert_array_equal(f1["x"], [[0, 1, 1, 0, 0, 1]])
  np.testing.assert_array_equal(test.create_dataset_for_client("f2").numpy()["y"], [9])
  assert len(train.create_dataset_from_all_clients()) == 3 + 1 + 2


def test_load_data_accepts_the_dataset_folder(femnist):
  root, _ = femnist
  train, _ = leaf.load_data(root.parent)  # data/<dataset> instead of data/<dataset>/data
  assert train.client_ids == ["f0", "f1", "f2"]


def test_read_one_file(femnist):
  root, _ = femnist
  data = leaf.read_dir(next((root / "test").glob("*.json")))
  assert data.client_ids == ["f0", "f2"]


def test_unknown_client(femnist):
  root, _ = femnist
  with pytest.raises(KeyError, match="Unknown client id 'f7'"):
    leaf.read_dir(root / "train").create_dataset_for_client("f7")


def test_sent140_like_strings(tmp_path):
  rows = {"alice": [["1467810369", "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", "alice",
                     "is upset that he can't update his Facebook"]],
          "bob": [["1467810672", "Mon Apr 06 22:19:49 PDT 2009", "NO_QUERY", "bob", "hi"],
                  ["1467810917", "Mon Apr 06 22:19:53 PDT 2009", "NO_QUERY", "bob", "ok"]]}
  _write(tmp_path / "train.json", ["alice", "bob"],
         {"alice": {"x": rows["alice"], "y": [0]}, "bob": {"x": rows["bob"], "y": [1, 1]}})
  data = leaf.read_dir(tmp_path)
  alice = data.create_dataset_for_client("alice").numpy()
  bob = data.create_dataset_for_client("bob").numpy()
  longest = max(len(s) for r in rows.values() for row in r for s in row)
  assert alice["x"].dtype == bob["x"].dtype == np.dtype(f"<U{longest}")
  assert alice["x"].shape == (1, 5) and bob["x"].shape == (2, 5)
  assert bob["x"].tolist() == rows["bob"] and alice["x"].tolist() == rows["alice"]
  np.testing.assert_array_equal(bob["y"], np.array([1, 1], np.int32))


def test_leaf_shakespeare_like(tmp_path):
  text = "To be, or not to be: that is the question: Whether 'tis nobler in the mind to su"
  _write(tmp_path / "s.json", ["HAMLET"], {"HAMLET": {"x": [text, text[1:] + "f"],
                                                      "y": ["f", "f"]}})
  ds = leaf.read_dir(tmp_path).create_dataset_for_client("HAMLET").numpy()
  assert ds["x"].tolist() == [text, text[1:] + "f"] and ds["y"].tolist() == ["f", "f"]
  assert ds["x"].dtype == np.dtype("<U80") and ds["y"].dtype == np.dtype("<U1")


def test_ragged_values_become_objects(tmp_path):
  x_a = [[["<BOS>", "hi"], ["there"]]]
  y_a = [{"target_tokens": [["hi", "<EOS>"]], "count_tokens": 2}]
  x_b = [[["ok"]], [["a", "b", "c"]]]
  y_b = [{"target_tokens": [["ok"]]}, {"target_tokens": [["a"]]}]
  _write(tmp_path / "r.json", ["a", "b"], {"a": {"x": x_a, "y": y_a}, "b": {"x": x_b, "y": y_b}})
  data = leaf.read_dir(tmp_path)
  a = data.create_dataset_for_client("a").numpy()
  b = data.create_dataset_for_client("b").numpy()
  assert a["x"].dtype == object and b["y"].dtype == object
  assert a["x"][0] == x_a[0] and a["y"][0] == y_a[0]
  assert list(b["x"]) == x_b and list(b["y"]) == y_b


def test_large_integers_are_int64(tmp_path):
  _write(tmp_path / "i.json", ["u"], {"u": {"x": [[1, 2]], "y": [2 ** 40]}})
  y = leaf.read_dir(tmp_path).create_dataset_for_client("u").numpy()["y"]
  assert y.dtype == np.int64 and y.tolist() == [2 ** 40]


@pytest.mark.parametrize("make, message", [
    (lambda p: _write(p, ["u"], {"u": {"x": [[1.0]], "y": [1, 2]}}, num_samples=[2]),
     r"u\.json: user 'u' has num_samples 2 but 1 x and 2 y values"),
    (lambda p: _write(p, ["u", "v"], {"u": {"x": [[1.0]], "y": [1]}}, num_samples=[1]),
     r"u\.json: 'users' and 'num_samples' must be lists of the same length"),
    (lambda p: _write(p, ["u", "v"], {"u": {"x": [[1.0]], "y": [1]}}, num_samples=[1, 1]),
     r"u\.json: user 'v' is listed in 'users' but 'user_data' has no"),
    (lambda p: p.write_text('{"users": ["u"], "num_samples": [1]}'),
     r"u\.json: missing key\(s\) \['user_data'\]"),
    (lambda p: p.write_text('{"users": ['), r"u\.json is not valid JSON"),
    (lambda p: p.write_text('[1, 2]'), r"u\.json: expected a JSON object"),
])
def test_invalid_files(tmp_path, make, message):
  make(tmp_path / "u.json")
  with pytest.raises(ValueError, match=message):
    leaf.read_dir(tmp_path)


def test_user_in_two_files(tmp_path):
  _write(tmp_path / "a.json", ["u"], {"u": {"x": [[1.0]], "y": [1]}})
  _write(tmp_path / "b.json", ["u"], {"u": {"x": [[2.0]], "y": [2]}})
  with pytest.raises(ValueError, match=r"User 'u' appears in both .*a\.json and .*b\.json"):
    leaf.read_dir(tmp_path)


def test_missing_folders(tmp_path):
  with pytest.raises(FileNotFoundError, match="holds no .json files"):
    leaf.read_dir(tmp_path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    leaf.read_dir(tmp_path / "nope")
  (tmp_path / "train").mkdir()
  with pytest.raises(FileNotFoundError, match="No 'test' folder in"):
    leaf.load_data(tmp_path)
