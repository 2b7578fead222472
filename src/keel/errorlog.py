"""Where the CLI writes the traceback of an unexpected error: a per-user state folder.

The folder is ``$KEEL_STATE_DIR``, else ``$XDG_STATE_HOME/keel``, else
``~/.local/state/keel``; it is made private (0700) and the log file is opened
with ``O_NOFOLLOW`` and mode 0600, so a symlink planted at its path is refused
rather than followed, and other users cannot read what the traceback shows.

>>> import os, tempfile
>>> os.environ["KEEL_STATE_DIR"] = tempfile.mkdtemp()
>>> path = write_error_log("Traceback: boom")
>>> path.read_text(), oct(path.stat().st_mode & 0o777)
('Traceback: boom', '0o600')
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """keel's per-user state folder (not created here)."""
    if explicit := os.environ.get("KEEL_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "keel"


def write_error_log(text: str) -> Path:
    """Write ``text`` to ``<state dir>/error.log``, privately; return the path written.

    Raises ``OSError`` when the path is a symlink or cannot be written.
    """
    folder = state_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "error.log"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an older file may have been made with wider bits
        os.write(descriptor, text.encode("utf-8", "replace"))
    finally:
        os.close(descriptor)
    return path
