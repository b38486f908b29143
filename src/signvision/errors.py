"""What signvision raises when what it was given cannot work (the exception tree; `files.py` keeps a user's
files safe).

Every exception below is a `SignvisionError`, with a message that names what is at fault on one line:
the argument (`image_size=10000: at most 1024 pixels a side`), the file, or the row. Each also derives from
the built-in exception a Python user would catch (ValueError, FileNotFoundError, OSError):

    SignvisionError
    ├── OptionError(ValueError)           an argument's value cannot work
    ├── DataError(ValueError)             a table, a row, a CSV, a data folder
    │   └── BadImage                      an image file that cannot be decoded (empty, corrupt, too large)
    ├── MissingError(FileNotFoundError)   a file or folder that is not there
    ├── RunError(ValueError)              a run or audit folder that cannot be used (unfinished, foreign, busy)
    ├── DivergedError(FloatingPointError) training produced NaN or infinite outputs
    └── DiskFullError(OSError)            the disk filled up while writing

A message refers to other arguments in backticks (`skip_bad_images`). The command line words the same
error with its flags: `--image-size 10000: ...`, `--skip-bad-images` (`SignvisionError.wording`).
"""

from __future__ import annotations

import re
from pathlib import Path

_NOTHING = object()


class SignvisionError(Exception):
    """Base of signvision's exceptions. `option` is the argument at fault and `value` the value it had;
    `wording(flags=True)` words the message as the command line does.

    Example:
        >>> e = OptionError("at most 1024 pixels a side", option="image_size", value=4096)
        >>> str(e), e.wording(flags=True)
        ('image_size=4096: at most 1024 pixels a side', '--image-size 4096: at most 1024 pixels a side')
    """

    def __init__(self, message: str, *, option: str | None = None, value=_NOTHING):
        super().__init__(message)
        self.message, self.option, self.value = message, option, value

    def wording(self, flags: bool = False) -> str:
        """The one-line message: with arguments as Python names (`image_size=64`), or as the command line's
        flags (`--image-size 64`) when `flags`."""

        def name(option: str) -> str:
            return "--" + option.replace("_", "-") if flags else option

        text = re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: name(m.group(1)) if flags else m.group(0), self.message)
        if self.option is None:
            return text
        if self.value is _NOTHING:
            return f"{name(self.option)}: {text}"
        shown = str(self.value) if flags else repr(self.value if not isinstance(self.value, Path) else str(self.value))
        return f"{name(self.option)} {shown}: {text}" if flags else f"{name(self.option)}={shown}: {text}"

    def __str__(self) -> str:
        return self.wording()


class OptionError(SignvisionError, ValueError):
    """An argument whose value cannot work (also a ValueError).

    Example:
        >>> isinstance(OptionError("must be positive", option="epochs", value=0), ValueError)
        True
    """


class DataError(SignvisionError, ValueError):
    """Bad data: a table, a row, a CSV file, a data folder (also a ValueError).

    Example:
        >>> str(DataError("Train.csv row 7: empty 'Label' for img_IDS='ImageID_1'"))
        "Train.csv row 7: empty 'Label' for img_IDS='ImageID_1'"
    """


class BadImage(DataError):
    """An image file that cannot be decoded (empty, corrupt, truncated, too large, not a file).

    Example:
        >>> read_image("/dev/null")                    # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        signvision.errors.BadImage: /dev/null: not a regular file (a FIFO, socket or device), not an image file
    """


class MissingError(SignvisionError, FileNotFoundError):
    """A file or folder that is not there (also a FileNotFoundError).

    Example:
        >>> isinstance(MissingError("folder not found", option="data", value="/nowhere"), FileNotFoundError)
        True
    """


class RunError(SignvisionError, ValueError):
    """A run (or audit) folder that cannot be used as asked: unfinished, foreign, or being written by another
    process (also a ValueError).

    Example:
        >>> load_run("/tmp")                           # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        signvision.errors.RunError: run='/tmp': no best.pt (not a signvision run, or no epoch finished yet)
    """


class DivergedError(SignvisionError, FloatingPointError):
    """Training produced NaN or infinite outputs."""


class DiskFullError(SignvisionError, OSError):
    """The disk filled up while writing a file (the earlier file, if any, is kept)."""
