"""The exceptions for a user's mistake (the CLI prints their message as one line and exits 2), and the
checks that keep a user's files safe."""

from pathlib import Path


class UserError(Exception):
    """Bad input (a file, row or option). The message names what is at fault, on one line."""


class BadImage(ValueError):
    """An image file that cannot be decoded (empty, corrupt, truncated, too large)."""


def refuse_overwrite(path: Path, overwrite: bool = False, option: str = "--out") -> None:
    """A user's file is never replaced unless they said so, and a folder never by a file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{option} {path}: already exists; choose another name or pass --overwrite")
    if not path.parent.exists():
        check_writable_folder(path.parent, option)


def check_writable_folder(folder: Path, option: str = "--out") -> None:
    """Fail now, with one line, if `folder` cannot be created and written (a permission or disk problem
    must show before hours of work, not after). Folders made for the test are removed again."""
    folder = Path(folder)
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".signvision-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{option} {folder}: cannot write there ({e.strerror or type(e).__name__})") from None
    finally:
        for p in made:  # deepest first
            try:
                p.rmdir()
            except OSError:
                pass
