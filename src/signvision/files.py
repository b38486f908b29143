"""Keeping a user's files safe: every write that matters goes through here.

    atomic_write          a temporary file beside the target, renamed over it when the block ends without error
    read_json, write_json JSON files (one-line errors naming the file; written atomically)
    process_alive         whether the process a lock file names still runs
    refuse_overwrite      a user's file is replaced only when they said so
    check_writable_folder fail at once, not after hours of work, when a folder cannot be written
    disk_full             whether an OSError means the disk is full

Nothing heavy is imported here: the command line imports this module and answers at once.
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path

from signvision.errors import _NOTHING, DataError, DiskFullError, MissingError, OptionError


def refuse_overwrite(path: Path, overwrite: bool = False, option: str = "out") -> None:
    """A user's file is never replaced unless they said so, and a folder never by a file."""
    path = Path(path)
    if path.is_dir():
        raise OptionError("is a folder; give a file name", option=option, value=path)
    if path.exists() and not overwrite:
        raise OptionError("already exists; choose another name or pass `overwrite`", option=option, value=path)
    check_writable_folder(path.parent, option, value=path)


def check_writable_folder(folder: Path, option: str = "out", value=_NOTHING) -> None:
    """Fail now, with one line, if `folder` cannot be created and written (a permission or disk problem
    must show before hours of work, not after). Folders made for the test are removed again."""
    folder = Path(folder)
    value = folder if value is _NOTHING else value
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".signvision-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OptionError(
            f"cannot write there ({e.strerror or type(e).__name__})", option=option, value=value
        ) from None
    finally:
        for p in made:  # deepest first
            try:
                p.rmdir()
            except OSError:
                pass


def disk_full(e: OSError, path: Path) -> bool:
    """Whether an OSError (or a RuntimeError that torch raised from one) means the disk is full."""
    return getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kw):
    """Open a temporary file beside `path` and rename it over `path` when the block ends without error: the
    file is then either the whole new one or, after any failure (a full disk, Ctrl-C), the old one, and no
    partial or empty file is left behind. A full disk is a `DiskFullError` naming `path`. A missing parent folder
    is made; the file gets the permissions the umask gives any new file (not the temporary file's 0600)."""
    path = Path(path)
    import tempfile  # here, not at the top: the command line imports this module and should answer at once

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if disk_full(e, path):
            raise DiskFullError(f"{path}: the disk is full; nothing was written (an earlier file is kept)") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """The process's umask (from /proc where it is there: setting it to read it is not safe beside threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_json(path: Path, hint: str = "") -> dict:
    """A JSON file as a dict, with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: not found{hint}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object")
    return raw


def write_json(path: Path, value: dict) -> None:
    """A JSON file, written atomically."""
    with atomic_write(path) as f:
        f.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def process_alive(pid: int) -> bool:
    """Whether a process of this machine still runs (for the lock and registry files that name their writer)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
