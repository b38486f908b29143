"""Keeping a user's files safe: every write that matters goes through here.

    atomic_write          a temporary file beside the target, renamed over it when the block ends without error
    read_json, write_json JSON files (one-line errors naming the file; written atomically)
    process_alive         whether the process a lock file names still runs
    refuse_overwrite      a user's file is replaced only when they said so
    check_writable_folder fail at once, not after hours of work, when a folder cannot be written
    disk_full             whether an OSError means the disk is full
    check_new_folder      a new or empty folder for new work (a file, or a folder of the user's, is refused)
    claim_folder          one writer at a time: a folder's .lock, taken atomically (a dead writer's is taken over)

Nothing heavy is imported here: the command line imports this module and answers at once.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from signvision.errors import _NOTHING, DataError, DiskFullError, MissingError, OptionError, RunError


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


RUN_FILES = ("config.json", "last.pt", "best.pt", "metrics.csv", "cv.json")  # a folder holding one holds a run
SIGNVISION_FILES = (*RUN_FILES, "ablation.json", "audit.html")  # ... or anything signvision wrote: never data
LOCK = ".lock"
# what a file browser or Jupyter leaves in any folder: a folder holding only these is empty
NOT_THE_USERS = frozenset({LOCK, ".DS_Store", ".ipynb_checkpoints", "Thumbs.db", "desktop.ini"})
_CLAIMED: dict[str, list] = {}  # the folders this process writes now: folder -> [thread, claims]
_CLAIMING = threading.Lock()


def holds_user_files(folder: Path, also: tuple[str, ...] = ()) -> bool:
    """Whether a folder holds anything of the user's (beyond a lock, `.DS_Store`, `.ipynb_checkpoints`, ...)."""
    return folder.is_dir() and any(p.name not in NOT_THE_USERS | set(also) for p in folder.iterdir())


def check_new_folder(out: Path, what: str = "", option: str = "out") -> None:
    """A folder to write new work into: absent, or empty of the user's files (a lock, `.DS_Store` and
    `.ipynb_checkpoints` do not count), and not a file. `what`: what else the message says of it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OptionError("exists and is not a folder", option=option, value=out)
    if holds_user_files(out):
        said = f" and {what}" if what else ""
        raise OptionError(f"the folder is not empty{said}; choose a new or empty folder", option=option, value=out)


# ----------------------------------------------------------------------------------------------------
# One writer at a time: a folder's .lock names the process that writes it
# ----------------------------------------------------------------------------------------------------
def claim_folder(folder: Path, option: str = "out") -> Path:
    """Take `folder` for this process: create its lock file exclusively (one of two processes started
    together wins; the other gets a RunError naming the writer). A lock left by a process that no longer
    runs on this machine is taken over. Returns the lock file (`release_folder` removes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    key = str(folder.resolve())
    with _CLAIMING:
        holder = _CLAIMED.get(key)
        if holder is not None and holder[0] != threading.get_ident():
            raise RunError(
                "another training or audit in this process (another thread) is writing it; wait for it to finish",
                option=option,
                value=folder,
            )
        if holder is not None and _owner(lock) == _me():  # the same call claiming it again (an audit that saves)
            holder[1] += 1
            return lock
        taken = _take_lock(lock, folder, option)
        _CLAIMED[key] = [threading.get_ident(), 1]
    return taken


def _me() -> dict:
    import socket  # here, not at the top: the command line imports this module and must answer at once

    return {"pid": os.getpid(), "host": socket.gethostname()}


def _owner(lock: Path) -> dict:
    """Who a lock file names ({} when it cannot be read)."""
    try:
        owner = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _take_lock(lock: Path, folder: Path, option: str) -> Path:
    """Create the lock file exclusively, or take over one left by a writer that is gone."""
    me = _me()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(lock)
            pid, host = owner.get("pid"), owner.get("host")
            if owner == me or (isinstance(pid, int) and host == me["host"] and not process_alive(pid)):
                lock.unlink(missing_ok=True)  # its writer died (or was this process, which holds it no more)
                continue
            raise RunError(
                f"another signvision process (pid {pid} on {host}) is writing it; wait for it to finish, "
                "or remove its .lock if that process is gone",
                option=option,
                value=folder,
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return lock
    raise RunError("could not take its .lock", option=option, value=folder)


def release_folder(folder: Path) -> None:
    """Let go of a folder this process claimed (the lock goes with the last of its claims)."""
    key = str(Path(folder).resolve())
    with _CLAIMING:
        holder = _CLAIMED.get(key)
        if holder is not None and holder[1] > 1:
            holder[1] -= 1
            return
        _CLAIMED.pop(key, None)
        (Path(folder) / LOCK).unlink(missing_ok=True)
