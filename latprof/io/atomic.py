"""Atomic file writes: a temporary file in the same folder, then a rename."""

from __future__ import annotations

import glob
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from latprof.errors import UsageError


def check_writable(path: Path, option: str = "-o") -> None:
    """Fail early, before any measuring, when `path` (given as `option`) cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(
            f"{option} {path} is a directory; give a file name such as {path}/profile.csv"
        )
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{option} {path}: no permission to write there; pick another path")


def is_same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` are one existing file (by device and inode, so links count)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist
        return False


def new_file_mode(path: Path) -> int:
    """The mode a replacement of `path` gets: the existing file's, or 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces `path`, on failure it is removed.

    The file gets the mode of the file it replaces, or (a new file) 0666 less the umask,
    as open() would give it."""
    path = Path(path)
    remove_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:  # say which file the user asked for, not the temporary name
        check_writable(path, "writing")
        raise UsageError(f"{path}: cannot write there ({exc.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, new_file_mode(path))  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale(path: Path) -> None:
    """Remove temporary files of `path` left by a process that was killed mid-write (their
    name carries the writer's pid; files of live processes are kept)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_with(path: Path, writer: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)
