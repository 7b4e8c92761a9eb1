"""A client's data on its device: a folder in fedjit's client-data format.

    <folder>/dataset.json   {"format": "fedjit-client-data-v1",
                             "fields": ["x", "y"], "batch_size": 32, "epochs": 1}
    <folder>/data.npz       one array per field, all with the same first
                            dimension (the examples); read without pickle

The client's dataset is then `Dataset.from_tensor_slices((x, y))`, repeated
`epochs` times and batched by `batch_size` (the last batch may be smaller):
each element is a tuple in the order of `fields`, as a model's
`input_spec` expects it.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from fedjit.deploy._files import write_atomic

__all__ = ["save_client_folder", "load_client_folder"]

_FORMAT = "fedjit-client-data-v1"


def save_client_folder(folder: str | os.PathLike, arrays: Mapping[str, Any],
                       fields: Sequence[str], *, batch_size: int, epochs: int = 1) -> None:
  """Writes a client's data in the folder format (see the module docstring).

  Example:
    >>> save_client_folder("hospital-a", {"x": x, "y": y}, ["x", "y"], batch_size=32)
  """
  fields = list(fields)
  arrays = {k: np.asarray(v) for k, v in arrays.items()}
  _check_spec(str(folder), fields, batch_size, epochs, arrays)
  buffer = io.BytesIO()
  np.savez(buffer, **{f: arrays[f] for f in fields})
  write_atomic(os.path.join(folder, "data.npz"), buffer.getvalue())
  write_atomic(os.path.join(folder, "dataset.json"), json.dumps(
      {"format": _FORMAT, "fields": fields, "batch_size": batch_size, "epochs": epochs},
      indent=1).encode())


def _check_spec(where, fields, batch_size, epochs, arrays):
  if not fields or not all(isinstance(f, str) and f for f in fields) or len(set(fields)) != len(
      fields):
    raise ValueError(f"{where}: 'fields' must be distinct names of the arrays, got {fields!r}.")
  for name, value in (("batch_size", batch_size), ("epochs", epochs)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{where}: '{name}' must be an int >= 1, got {value!r}.")
  missing = [f for f in fields if f not in arrays]
  if missing:
    raise ValueError(f"{where}: no array for field(s) {missing}; the arrays are "
                     f"{sorted(arrays)}.")
  sizes = {f: (arrays[f].shape[0] if arrays[f].ndim else None) for f in fields}
  if None in sizes.values() or len(set(sizes.values())) != 1:
    raise ValueError(f"{where}: every field needs the same number of examples (first "
                     f"dimension), got {sizes}.")
  if next(iter(sizes.values())) == 0:
    raise ValueError(f"{where}: the client has no examples.")


def load_client_folder(folder: str | os.PathLike) -> Any:
  """The client's dataset from a folder in the format of the module docstring.

  Raises:
    FileNotFoundError: a file is missing.
    ValueError: the files do not follow the format (the message says which
      field).

  Example:
    >>> dataset = load_client_folder("hospital-a")     # a fedjit.simulation.Dataset
  """
  from fedjit.simulation import Dataset
  where = os.fspath(folder)
  spec_path, data_path = os.path.join(where, "dataset.json"), os.path.join(where, "data.npz")
  for p in (spec_path, data_path):
    if not os.path.exists(p):
      raise FileNotFoundError(f"{p} is missing: a client-data folder holds dataset.json and "
                              f"data.npz (fedjit.deploy.save_client_folder writes them).")
  try:
    with open(spec_path, "rb") as fh:
      spec = json.loads(fh.read().decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{spec_path} is not JSON: {e}.") from None
  if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
    raise ValueError(f"{spec_path} must say \"format\": \"{_FORMAT}\".")
  try:
    with np.load(data_path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except (ValueError, OSError) as e:
    raise ValueError(f"{data_path} is not a NumPy .npz file of plain arrays: {e}.") from None
  fields, batch_size, epochs = spec.get("fields"), spec.get("batch_size"), spec.get("epochs", 1)
  _check_spec(where, fields if isinstance(fields, list) else [], batch_size, epochs, arrays)
  dataset = Dataset.from_tensor_slices(tuple(arrays[f] for f in fields))
  if epochs > 1:
    dataset = dataset.repeat(epochs)
  return dataset.batch(batch_size)
