"""Tests for fedjit.learning._checkpoint: safetensors checkpoints of pytrees."""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy

import fedjit
from fedjit.learning._checkpoint import (load_checkpoint,
                                         read_checkpoint_metadata,
                                         save_checkpoint)


class ModelWeights(NamedTuple):
  trainable: Any
  non_trainable: Any


class ServerState(NamedTuple):
  global_model_weights: ModelWeights
  optimizer_state: Any
  round_num: Any


def _state():
  """A nested state with every supported leaf kind; no two leaves alike."""
  return ServerState(
      global_model_weights=ModelWeights(
          trainable={"dense": {"kernel": np.arange(6, dtype=np.float32)
                                         .reshape(2, 3) / 7,
                               "bias": np.array([-1.5, 2.25, 0.0], np.float32)},
                     "embed": [np.array([[1, -2], [3, 4]], np.int32),
                               np.array([4_000_000_000, 7], np.uint32)]},
          non_trainable=[np.array([True, False, True]), (), {}, None]),
      optimizer_state={"count": np.int32(5),
                       "scale": np.float32(0.125),
                       "zero_d": np.array(2.5, np.float64),
                       "empty": np.zeros((0, 4), np.float32),
                       "bf16": np.array([1.5, -3.0], ml_dtypes.bfloat16),
                       "bf16_scalar": ml_dtypes.bfloat16(0.5),
                       "c128": np.array([1 + 2j, -3.5j], np.complex128),
                       "f8": np.array([0.5, 2.0], ml_dtypes.float8_e4m3fn),
                       "strided": np.arange(10, dtype=np.int16)[::3],
                       "big_endian": np.array([1.0, 2.0], ">f4")},
      round_num=7)


def _zeros_like(tree):
  """A template: same structure and leaf kinds, different values."""
  def zero(leaf):
    if isinstance(leaf, (bool, int, float, complex)):
      return type(leaf)(0)
    if isinstance(leaf, np.generic):
      return leaf.dtype.type(0)
    return np.zeros(leaf.shape, leaf.dtype)
  return jax.tree_util.tree_map(zero, tree)


def _assert_identical(actual, expected):
  assert (jax.tree_util.tree_structure(actual)
          == jax.tree_util.tree_structure(expected))
  for a, e in zip(jax.tree_util.tree_leaves(actual),
                  jax.tree_util.tree_leaves(expected)):
    assert type(a) is type(e), (type(a), type(e))
    if isinstance(e, (bool, int, float, complex)):
      assert a == e
      continue
    assert np.asarray(a).dtype == np.asarray(e).dtype.newbyteorder("=")
    assert np.shape(a) == np.shape(e)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def _header(path) -> dict:
  """Parses the safetensors header by hand: 8-byte length, then JSON."""
  data = pathlib.Path(path).read_bytes()
  n = int.from_bytes(data[:8], "little")
  return json.loads(data[8:8 + n])


@pytest.fixture
def ckpt(tmp_path):
  return tmp_path / "ckpt.safetensors"


# ------------------------------------------------------------- round trips

def test_round_trip_keeps_structure_values_and_dtypes(ckpt):
  state = _state()
  assert save_checkpoint(ckpt, state) == ckpt
  restored = load_checkpoint(ckpt, _zeros_like(state))
  _assert_identical(restored, state)
  opt = restored.optimizer_state
  assert isinstance(opt["scale"], np.float32) and opt["scale"] == 0.125
  assert isinstance(opt["count"], np.int32) and opt["count"] == 5
  assert type(opt["zero_d"]) is np.ndarray and opt["zero_d"].shape == ()
  assert opt["bf16"].dtype == ml_dtypes.bfloat16
  assert type(opt["bf16_scalar"]) is ml_dtypes.bfloat16
  assert restored.global_model_weights.trainable["embed"][1][0] == 4_000_000_000
  assert restored.global_model_weights.non_trainable[1:] == [(), {}, None]
  assert restored.round_num == 7 and type(restored.round_num) is int


def test_round_trip_of_jax_arrays_prng_keys_and_shape_templates(ckpt):
  key = jax.random.split(jax.random.key(42), 3)
  state = {"w": jnp.array([[1.0, 2.0]], jnp.float32),
           "step": jnp.array(3, jnp.int32),
           "mask": jnp.array([True, False]),
           "bf16": jnp.array([0.25], jnp.bfloat16),
           "key": key}
  save_checkpoint(ckpt, state)
  for template in (jax.tree_util.tree_map(jnp.zeros_like, state),
                   jax.eval_shape(lambda: state)):
    restored = load_checkpoint(ckpt, template)
    assert set(restored) == set(state)
    for name in ("w", "step", "mask", "bf16"):
      assert isinstance(restored[name], jax.Array)
      assert restored[name].dtype == state[name].dtype
      np.testing.assert_array_equal(restored[name], state[name])
    assert restored["key"].dtype == key.dtype and restored["key"].shape == (3,)
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]),
                                  jax.random.key_data(key))
    np.testing.assert_array_equal(jax.random.uniform(restored["key"][1], (2,)),
                                  jax.random.uniform(key[1], (2,)))


def test_single_array_and_empty_states(tmp_path):
  save_checkpoint(tmp_path / "a", np.float32(1.5))
  restored = load_checkpoint(tmp_path / "a", np.float32(0))
  assert type(restored) is np.float32 and restored == 1.5
  for i, empty in enumerate([None, {}, [], ModelWeights((), {})]):
    save_checkpoint(tmp_path / f"e{i}", empty, metadata={"i": i})
    assert load_checkpoint(tmp_path / f"e{i}", empty) == empty
    assert read_checkpoint_metadata(tmp_path / f"e{i}") == {"i": i}


def test_metadata_round_trip_and_document(ckpt):
  state = {"b": [np.zeros(2, np.float32), np.int32(3)], "a": np.ones((1, 2))}
  metadata = {"round": 5, "loss": 0.25, "tags": ["fedavg"], "nested": {"x": None}}
  save_checkpoint(ckpt, state, metadata=metadata)
  assert read_checkpoint_metadata(ckpt) == metadata
  doc = json.loads(_header(ckpt)["__metadata__"]["fedjit"])
  assert doc["format"] == "fedjit.checkpoint" and doc["format_version"] == 1
  assert doc["fedjit_version"] == fedjit.__version__
  assert doc["metadata"] == metadata
  assert doc["leaves"] == [  # tree_flatten order: sorted dict keys
      {"key": "['a']", "dtype": "float64", "shape": [1, 2]},
      {"key": "['b'][0]", "dtype": "float32", "shape": [2]},
      {"key": "['b'][1]", "dtype": "int32", "shape": []}]
  assert read_checkpoint_metadata(str(ckpt)) == metadata
  save_checkpoint(ckpt, state)
  assert read_checkpoint_metadata(ckpt) == {}


def test_creates_parent_directories(tmp_path):
  path = tmp_path / "runs" / "exp1" / "round_0003.safetensors"
  assert save_checkpoint(str(path), [np.zeros(1)]) == path
  assert path.is_file()


def test_colliding_key_paths_are_made_unique(ckpt):
  class Pair:
    def __init__(self, a, b):
      self.a, self.b = a, b

  jax.tree_util.register_pytree_with_keys(
      Pair,
      lambda p: (((jax.tree_util.GetAttrKey("x"), p.a),
                  (jax.tree_util.GetAttrKey("x"), p.b)), None),
      lambda _, children: Pair(*children))
  save_checkpoint(ckpt, Pair(np.int32(1), np.int32(2)))
  restored = load_checkpoint(ckpt, Pair(np.int32(0), np.int32(0)))
  assert (restored.a, restored.b) == (1, 2)
  assert sorted(k for k in _header(ckpt) if k != "__metadata__") == [".x", ".x#1"]


# ------------------------------------------------------------- file format

def test_file_is_plain_safetensors_without_pickle(ckpt):
  state = {"w": np.arange(4, dtype=np.float32), "n": np.int64(9),
           "bf16": np.ones(2, ml_dtypes.bfloat16),
           "c": np.array([1j], np.complex128)}
  save_checkpoint(ckpt, state, metadata={"round": 1})
  header = _header(ckpt)
  assert set(header["__metadata__"]) == {"fedjit"}
  assert all(isinstance(v, str) for v in header["__metadata__"].values())
  dtypes = {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}
  assert dtypes == {"['w']": "F32", "['n']": "I64", "['bf16']": "BF16",
                    "['c']": "U8"}  # complex128 stored as its raw bytes
  assert header["['c']"]["shape"] == [16]
  # Native dtypes are readable by any safetensors reader.
  data = pathlib.Path(ckpt).read_bytes()
  raw = dict(safetensors.deserialize(data))
  np.testing.assert_array_equal(
      np.frombuffer(raw["['w']"]["data"], np.float32), state["w"])
  assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data


# ------------------------------------------------------------- mismatches

@pytest.mark.parametrize("template, path, expects, holds", [
    ({"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.int32)},
     "['w']", "float32[3,2]", "float32[2,3]"),
    ({"w": np.zeros((2, 3), np.float64), "b": np.zeros(2, np.int32)},
     "['w']", "float64[2,3]", "float32[2,3]"),
    ({"w": np.zeros((2, 3), np.float32), "b": np.int32(0)},
     "['b']", "int32", "int32[2]"),
    ({"w": np.zeros((2, 3), np.float32), "bias": np.zeros(2, np.int32)},
     "['bias']", "['bias']: int32[2]", "['b']: int32[2]"),
    ({"b": np.zeros(2, np.int32)},
     "['w']", "no more leaves", "an extra leaf ['w']: float32[2,3]"),
    ({"w": np.zeros((2, 3), np.float32), "b": np.zeros(2, np.int32),
      "z": [np.zeros(1)]},
     "['z'][0]", "a leaf ['z'][0]: float64[1]", "no more leaves"),
    (ModelWeights(np.zeros((2, 3), np.float32), np.zeros(2, np.int32)),
     ".trainable", ".trainable: float32[2,3]", "['b']: int32[2]"),
])
def test_template_mismatch_raises_value_error(ckpt, template, path, expects, holds):
  save_checkpoint(ckpt, {"b": np.arange(2, dtype=np.int32),
                         "w": np.ones((2, 3), np.float32)})
  with pytest.raises(ValueError) as info:
    load_checkpoint(ckpt, template)
  message = str(info.value)
  assert str(ckpt) in message
  assert f"at {path}" in message
  assert f"the template expects {expects}" in message
  assert f"the file holds {holds}" in message
  assert "different model or process" in message


@pytest.mark.parametrize("template, where, mine, theirs", [
    ({"b": np.zeros(2, np.int32), "w": np.zeros((3, 2), np.float32)},
     "['w']", "['w']: float32[3,2]", "['w']: float32[2,3]"),
    ({"b": np.zeros(2, np.int32), "v": np.zeros((2, 3), np.float32)},
     "['v']", "['v']: float32[2,3]", "['w']: float32[2,3]"),
    ({"b": np.zeros(2, np.int32)}, "['w']", None, "['w']: float32[2,3]"),
    ({"b": np.zeros(2, np.int32), "w": np.zeros((2, 3), np.float32), "z": np.zeros(1)},
     "['z']", "['z']: float64[1]", None),
])
def test_mismatch_error_carries_the_details(ckpt, template, where, mine, theirs):
  from fedjit.learning._checkpoint import CheckpointMismatchError
  save_checkpoint(ckpt, {"b": np.arange(2, dtype=np.int32),
                         "w": np.ones((2, 3), np.float32)})
  with pytest.raises(CheckpointMismatchError) as info:
    load_checkpoint(ckpt, template)
  e = info.value
  assert isinstance(e, ValueError) and e.path == ckpt and e.where == where
  assert (e.template_leaf, e.file_leaf) == (mine, theirs)
  assert (e.template_leaves, e.file_leaves) == (len(template), 2)


def test_first_mismatch_is_named(ckpt):
  save_checkpoint(ckpt, [np.zeros(1), np.zeros(2), np.zeros(3)])
  with pytest.raises(ValueError, match=r"at \[1\]: the template expects "
                                       r"float64\[5\], the file holds float64\[2\]"):
    load_checkpoint(ckpt, [np.zeros(1), np.zeros(5), np.zeros(4)])


def test_prng_key_template_must_match(ckpt):
  save_checkpoint(ckpt, {"key": jax.random.key(0)})
  with pytest.raises(ValueError, match=r"expects uint32\[2\], the file holds key<fry>"):
    load_checkpoint(ckpt, {"key": jax.random.PRNGKey(0)})


# ------------------------------------------------------------- atomic writes

def _only_file(directory) -> list[str]:
  return sorted(os.listdir(directory))


def test_failed_save_file_leaves_old_checkpoint_and_no_temp(ckpt, monkeypatch):
  save_checkpoint(ckpt, {"w": np.ones(3, np.float32)}, metadata={"round": 1})

  def torn_write(tensors, filename, metadata=None):
    pathlib.Path(filename).write_bytes(b"\x10\x00\x00\x00partial")
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(safetensors.numpy, "save_file", torn_write)
  with pytest.raises(OSError, match="No space left"):
    save_checkpoint(ckpt, {"w": np.full(3, 2, np.float32)}, metadata={"round": 2})
  monkeypatch.undo()
  assert _only_file(ckpt.parent) == [ckpt.name]
  np.testing.assert_array_equal(
      load_checkpoint(ckpt, {"w": np.zeros(3, np.float32)})["w"], np.ones(3))
  assert read_checkpoint_metadata(ckpt) == {"round": 1}


def test_failed_replace_leaves_old_checkpoint_and_no_temp(ckpt, monkeypatch):
  save_checkpoint(ckpt, [np.int32(1)])

  def failing_replace(src, dst):
    raise KeyboardInterrupt  # interrupted between write and rename

  monkeypatch.setattr(os, "replace", failing_replace)
  with pytest.raises(KeyboardInterrupt):
    save_checkpoint(ckpt, [np.int32(2)])
  monkeypatch.undo()
  assert _only_file(ckpt.parent) == [ckpt.name]
  assert load_checkpoint(ckpt, [np.int32(0)]) == [1]


@pytest.mark.parametrize("bad", ["a string", object(), np.array(["x"]),
                                 np.array([1, None], dtype=object)])
def test_non_array_leaf_raises_and_writes_nothing(tmp_path, bad):
  old = tmp_path / "old.safetensors"
  save_checkpoint(old, {"w": np.ones(2)})
  with pytest.raises(TypeError, match=r"leaf at \['x'\]\[1\]"):
    save_checkpoint(old, {"w": np.zeros(2), "x": [np.ones(1), bad]})
  with pytest.raises(TypeError):
    save_checkpoint(tmp_path / "new" / "c.safetensors", {"x": [np.ones(1), bad]})
  assert _only_file(tmp_path) == ["old.safetensors"]
  np.testing.assert_array_equal(load_checkpoint(old, {"w": np.zeros(2)})["w"],
                                np.ones(2))


def test_unserializable_metadata_raises_and_writes_nothing(ckpt):
  with pytest.raises(TypeError, match="JSON-serializable"):
    save_checkpoint(ckpt, [np.ones(1)], metadata={"when": object()})
  with pytest.raises(TypeError, match="must be a dict"):
    save_checkpoint(ckpt, [np.ones(1)], metadata=[("round", 1)])
  assert _only_file(ckpt.parent) == []


def test_unwritable_directory_leaves_nothing(tmp_path):
  blocker = tmp_path / "not_a_dir"
  blocker.write_text("a file where a directory should be")
  with pytest.raises(OSError):
    save_checkpoint(blocker / "ckpt.safetensors", [np.ones(1)])
  with pytest.raises(OSError):  # the target itself is a directory
    save_checkpoint(tmp_path, [np.ones(1)])
  assert _only_file(tmp_path) == ["not_a_dir"]


# ------------------------------------------------------------- bad files

def test_missing_file_raises_file_not_found(tmp_path):
  missing = tmp_path / "nope.safetensors"
  with pytest.raises(FileNotFoundError, match="nope.safetensors"):
    load_checkpoint(missing, [np.zeros(1)])
  with pytest.raises(FileNotFoundError, match="nope.safetensors"):
    read_checkpoint_metadata(missing)


@pytest.mark.parametrize("cut", [1, 10, 60, -1])
def test_truncated_file_raises_value_error(ckpt, cut):
  template = {"w": np.zeros((4, 4), np.float32)}
  save_checkpoint(ckpt, {"w": np.ones((4, 4), np.float32)}, metadata={"r": 1})
  data = ckpt.read_bytes()
  ckpt.write_bytes(data[:cut])
  for read in (lambda: load_checkpoint(ckpt, template),
               lambda: read_checkpoint_metadata(ckpt)):
    with pytest.raises(ValueError,
                       match="not a fedjit checkpoint or is corrupt") as info:
      read()
    assert str(ckpt) in str(info.value)


def test_garbage_and_foreign_files_raise_value_error(tmp_path):
  garbage = tmp_path / "garbage"
  garbage.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00hello")
  foreign = tmp_path / "foreign.safetensors"
  safetensors.numpy.save_file({"w": np.ones(2, np.float32)}, foreign)
  for path in (garbage, foreign):
    with pytest.raises(ValueError, match=f"{path}.*not a fedjit checkpoint"):
      load_checkpoint(path, {"w": np.zeros(2, np.float32)})


def test_newer_format_version_asks_to_upgrade(ckpt):
  doc = {"format": "fedjit.checkpoint", "format_version": 99,
         "fedjit_version": "9.0", "leaves": [], "metadata": {}}
  safetensors.numpy.save_file({}, ckpt, metadata={"fedjit": json.dumps(doc)})
  with pytest.raises(ValueError, match="format version 99.*Upgrade fedjit"):
    read_checkpoint_metadata(ckpt)


def test_template_leaf_must_be_an_array(ckpt):
  save_checkpoint(ckpt, {"w": np.ones(1)})
  with pytest.raises(TypeError, match=r"leaf at \['w'\].*got builtins.str"):
    load_checkpoint(ckpt, {"w": "weights"})
