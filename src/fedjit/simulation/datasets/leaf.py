"""Federated datasets in LEAF's JSON format, from folders you made yourself.

LEAF (https://github.com/TalwalkarLab/leaf) preprocesses FEMNIST, Sent140,
Shakespeare, CelebA, Reddit and a synthetic task into JSON files under
`data/<dataset>/data/train` and `.../test`. Each file holds

  {"users": ["f0000_14", ...], "num_samples": [177, ...],
   "user_data": {"f0000_14": {"x": [...], "y": [...]}, ...}}

(and, for some datasets, `"hierarchies"`, which is ignored). `read_dir`
turns a folder of such files into a ClientData with one client per user and
examples `{"x": ..., "y": ...}`; `load_data` reads the train and test folders.

The JSON values become NumPy arrays, with one dtype per key for the whole
folder: integers become int32 (int64 if they do not fit), numbers with a
fraction float32, booleans bool, and strings fixed-width `str` arrays as
wide as the longest string. FEMNIST gives `x` float32[784] and `y` int32;
Sent140 `x` str[5] (the tweet's id, date, query, user and text) and `y`
int32; LEAF's Shakespeare `x` str (80 characters) and `y` str (one). Values
that do not form a rectangular array (Reddit's token lists, dicts) are kept
as an object array with one JSON value per example.

Source: nothing is downloaded here. Make the folders with LEAF's own
scripts, following its instructions (https://github.com/TalwalkarLab/leaf,
e.g. `cd data/femnist && ./preprocess.sh -s niid --sf 0.05 -k 0 -t sample`);
those scripts download the raw data from each dataset's publisher.

License: LEAF's code is BSD-2-Clause; each dataset keeps its publisher's
terms, which you accept when LEAF's scripts download it: FEMNIST comes from
NIST Special Database 19 (NIST's terms), Sent140 from Sentiment140 (Go,
Bhayani and Huang, 2009; see its site's terms), Shakespeare from Project
Gutenberg (public domain), CelebA from CUHK (non-commercial research use
only), Reddit from pushshift.io's dumps. Check them before redistributing.

Size: what you generate. LEAF's paper counts, for the full datasets: FEMNIST
805,263 examples from 3,550 writers (784 numbers each, so several GB of JSON
text; LEAF's `--sf` option keeps a fraction), Sent140 1,600,498 tweets from
660,120 users, Shakespeare 4,226,158 examples from 1,129 roles, CelebA
200,288 images from 9,343 celebrities. Each JSON file is read whole into
memory, so expect a few times a file's size while loading.

Example:
  >>> train, test = fedjit.simulation.datasets.leaf.load_data("leaf/data/femnist/data")
  >>> str(train.element_type_structure)
  '<x=float32[784],y=int32>'
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from fedjit.simulation._client_data import ClientData
from fedjit.simulation._dataset import Dataset

__all__ = ["load_data", "read_dir"]

_KEYS = ("x", "y")


def _as_array(values: list) -> np.ndarray:
  """A user's values as an array, or an object array of the values."""
  try:
    a = np.asarray(values)
  except (ValueError, TypeError, OverflowError):  # ragged, or ints too big for int64
    a = None
  if a is not None and a.dtype.kind in "biufU" and a.ndim >= 1:
    return a
  out = np.empty(len(values), object)
  for i, v in enumerate(values):
    out[i] = v
  return out


def _harmonize(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Gives every user's array of `key` the same dtype (and string width)."""
  if not arrays:
    return arrays
  kinds = {a.dtype.kind for a in arrays.values()}
  shapes = {a.shape[1:] for a in arrays.values()}
  if "O" in kinds or len(shapes) > 1 or ("U" in kinds and len(kinds) > 1):
    def to_object(a):
      if a.dtype.kind == "O":
        return a
      out = np.empty(len(a), object)
      for i in range(len(a)):
        out[i] = a[i].tolist() if a.ndim > 1 else a[i].item()
      return out
    return {u: to_object(a) for u, a in arrays.items()}
  if kinds == {"U"}:
    dtype = np.dtype(f"<U{max(a.dtype.itemsize // 4 for a in arrays.values())}")
  elif kinds == {"b"}:
    dtype = np.dtype(bool)
  elif "f" in kinds:
    dtype = np.dtype(np.float32)
  else:  # integers (and booleans among them)
    info = np.iinfo(np.int32)
    fits = all(a.size == 0 or (a.min() >= info.min and a.max() <= info.max)
               for a in arrays.values())
    dtype = np.dtype(np.int32 if fits else np.int64)
  return {u: a.astype(dtype, copy=False) for u, a in arrays.items()}


def _json_files(path: pathlib.Path) -> list[pathlib.Path]:
  if path.is_file():
    return [path]
  if not path.is_dir():
    raise FileNotFoundError(f"{path} does not exist. Pass a folder of LEAF .json files, "
                            f"such as leaf/data/femnist/data/train.")
  files = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
  if not files:
    raise FileNotFoundError(f"{path} holds no .json files. LEAF writes them under "
                            f"data/<dataset>/data/train and /test once preprocess.sh ran.")
  return files


def _read_file(path: pathlib.Path) -> dict[str, dict[str, np.ndarray]]:
  """`{user: {"x": array, "y": array}}` of one LEAF file, validated."""
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON: {e}") from e
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected a JSON object with keys 'users', 'num_samples' "
                     f"and 'user_data', got a {type(data).__name__}.")
  missing = [k for k in ("users", "num_samples", "user_data") if k not in data]
  if missing:
    raise ValueError(f"{path}: missing key(s) {missing}; a LEAF file has 'users', "
                     f"'num_samples' and 'user_data' (found {sorted(data)}).")
  users, counts, user_data = data["users"], data["num_samples"], data["user_data"]
  if not isinstance(users, list) or not isinstance(counts, list) or len(users) != len(counts):
    raise ValueError(f"{path}: 'users' and 'num_samples' must be lists of the same length "
                     f"(one count per user), got {len(users)} users and {len(counts)} counts.")
  if not isinstance(user_data, dict):
    raise ValueError(f"{path}: 'user_data' must map each user to {{'x': [...], 'y': [...]}}.")
  out = {}
  for user, count in zip(users, counts):
    entry = user_data.get(user)
    if not isinstance(entry, dict) or any(k not in entry for k in _KEYS):
      raise ValueError(f"{path}: user {user!r} is listed in 'users' but 'user_data' has no "
                       f"{{'x': [...], 'y': [...]}} for it.")
    x, y = entry["x"], entry["y"]
    if not (isinstance(x, list) and isinstance(y, list)):
      raise ValueError(f"{path}: user {user!r}: 'x' and 'y' must be lists.")
    if not len(x) == len(y) == count:
      raise ValueError(f"{path}: user {user!r} has num_samples {count} but {len(x)} x "
                       f"and {len(y)} y values; the three must agree.")
    if count:
      out[str(user)] = {"x": _as_array(x), "y": _as_array(y)}
  return out


def read_dir(path: str | os.PathLike) -> ClientData:
  """A ClientData from a folder of LEAF JSON files (or one file).

  Users are clients, in the order of the files (sorted by name) and of each
  file's `users`; users with no samples are left out. Examples are
  `{"x": ..., "y": ...}`, converted as the module docstring says.

  Args:
    path: a folder such as `leaf/data/femnist/data/train`, or one .json file.

  Returns:
    The ClientData.

  Raises:
    FileNotFoundError: `path` does not exist or holds no .json file.
    ValueError: a file is not LEAF JSON, its counts do not match its data
      (the message names the file and the user), or a user appears in two
      files.

  Example:
    >>> train = read_dir("leaf/data/sent140/data/train")
    >>> train.create_dataset_for_client(train.client_ids[0]).element_spec
  """
  folder = pathlib.Path(path).expanduser()
  columns: dict[str, dict[str, np.ndarray]] = {k: {} for k in _KEYS}
  source: dict[str, pathlib.Path] = {}
  for file in _json_files(folder):
    for user, arrays in _read_file(file).items():
      if user in source:
        raise ValueError(f"User {user!r} appears in both {source[user]} and {file}; "
                         f"a folder should hold one split of a LEAF dataset.")
      source[user] = file
      for k in _KEYS:
        columns[k][user] = arrays[k]
  if not source:
    raise ValueError(f"The LEAF files in {folder} hold no user with samples.")
  columns = {k: _harmonize(v) for k, v in columns.items()}

  def create(user: str) -> Dataset:
    return Dataset.from_tensor_slices({k: columns[k][user] for k in _KEYS})

  return ClientData.from_clients_and_fn(list(source), create)


def _split_dir(directory: pathlib.Path, split: str) -> pathlib.Path:
  for candidate in (directory / split, directory / "data" / split):
    if candidate.is_dir():
      return candidate
  raise FileNotFoundError(
      f"No {split!r} folder in {directory} (nor in {directory / 'data'}). Pass LEAF's "
      f"data/<dataset>/data folder, which holds train/ and test/ once preprocess.sh ran "
      f"(e.g. ./preprocess.sh -s niid --sf 0.05 -k 0 -t sample).")


def load_data(directory: str | os.PathLike) -> tuple[ClientData, ClientData]:
  """The `(train, test)` ClientData of a LEAF dataset that you preprocessed.

  Args:
    directory: LEAF's `data/<dataset>/data` folder (holding `train/` and
      `test/`), or `data/<dataset>` itself.

  Returns:
    `read_dir(directory/"train")` and `read_dir(directory/"test")`.

  Raises:
    FileNotFoundError: there is no train or test folder, or no .json in it.
    ValueError: a file is not valid LEAF JSON (see `read_dir`).

  Example:
    >>> train, test = load_data("leaf/data/femnist/data")
    >>> len(train.client_ids)
  """
  directory = pathlib.Path(directory).expanduser()
  train, test = _split_dir(directory, "train"), _split_dir(directory, "test")
  return read_dir(train), read_dir(test)
