"""Reading and writing keel's own files: atomically, with errors that name the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from keel.errors import DataError


def write_atomically(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and rename it over, so no reader sees half a file.

    The file is fsynced before the rename and its folder after it, so the new content
    survives a power cut once this returns.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> write_atomically(target, "hello")
    >>> target.read_text()
    'hello'
    """
    payload = data.encode() if isinstance(data, str) else data
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise DataError(f"{path}: cannot write, the folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as error:
        raise DataError(f"{path}: cannot write ({error.strerror})") from error
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(folder)


def fsync_folder(folder: Path) -> None:
    """Make a folder's entries (a file created or renamed in it) durable.

    >>> import tempfile, pathlib
    >>> fsync_folder(pathlib.Path(tempfile.mkdtemp()))
    """
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError as error:
        raise DataError(f"{folder}: cannot sync the folder ({error.strerror})") from error
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def read_keel_file(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path.read_bytes()
