"""The one exception type for a user's mistake: the CLI prints its message as one line and exits 2."""

from pathlib import Path


class UserError(Exception):
    """Bad input (a file, row or option). The message names what is at fault, on one line."""


def refuse_overwrite(path: Path, overwrite: bool = False, option: str = "--out") -> None:
    """A user's file is never replaced unless they said so."""
    if path.exists() and not overwrite:
        raise UserError(f"{option} {path}: already exists; choose another name or pass --overwrite")
