"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

The new content goes to a temporary file `.<name>.<pid>.<random>.tmp` beside the target,
which then replaces the target in one rename. A process killed before the rename
leaves only that temporary file behind. The next write of the same target deletes
every such file whose process is no longer running.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files of `path` left by writers that were killed before their rename."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[^.]+\.tmp")
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match is None or entry.is_symlink() or not entry.is_file():
            continue
        if not _process_running(int(match[1])):
            entry.unlink(missing_ok=True)


def _process_running(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows, so nothing is deleted there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process or a number out of range, so its file stays
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
