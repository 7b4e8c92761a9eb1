"""Atomic file writes for deployment material (keys, certificates, allow-lists):
a file is either the old one or the complete new one, never half written, and
secret files are created readable by their owner only."""

from __future__ import annotations

import os
import tempfile

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike, data: bytes, *, secret: bool = False,
                 overwrite: bool = True) -> None:
  """Writes `data` to `path` through a temporary file in the same folder and
  `os.replace`, so a crash leaves the old file or the new one.

  Args:
    path: the file to write.
    data: its bytes.
    secret: create it with mode 0600 (private keys).
    overwrite: if False, refuse to replace an existing file.

  Raises:
    FileExistsError: `path` exists and `overwrite` is False.

  Example:
    >>> write_atomic("certs/ca.key", pem_bytes, secret=True, overwrite=False)
  """
  path = os.fspath(path)
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} already exists; pass overwrite (--force) to replace it, "
                          f"or choose another folder.")
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
  try:
    os.chmod(tmp, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as fh:
      fh.write(data)
      fh.flush()
      os.fsync(fh.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except FileNotFoundError:
      pass
    raise
