"""Progress bars that suit where the output goes, and the log that training writes.

    in Jupyter (a notebook kernel)   tqdm's notebook bar
    on a terminal                    tqdm's redrawn text bar
    into a file or a pipe            plain lines, each with the count, rate and ETA: one when a bar has run
                                     LOG_EVERY seconds since its last line, and one at the end of any bar that
                                     took LOG_FINAL seconds or more (a log file never gets a bar's frames)

Bars are drawn only by the first process of a distributed run, and not at all when the environment sets
SIGNVISION_PROGRESS=0 (tests, CI).
"""

from __future__ import annotations

import os
import sys
import time

LOG_EVERY = 60.0  # seconds between a bar's lines in a log file
LOG_FINAL = 10.0  # a bar that took this long writes its last line to a log file


def show_progress(rank: int = 0) -> bool:
    """Progress bars: only on the first process, and not when SIGNVISION_PROGRESS=0 (logs, CI)."""
    return rank == 0 and os.environ.get("SIGNVISION_PROGRESS", "1") != "0"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (checked without importing IPython)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class LineProgress:
    """The part of tqdm's interface signvision uses (`update`, `set_postfix`, `close`, iteration), writing
    plain lines (see the module docstring)."""

    def __init__(self, iterable=None, *, total=None, desc: str = "", unit: str = "it", file=None, **_):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.file = file or sys.stderr
        self.n, self.postfix = 0, ""
        self.start = self.last = time.perf_counter()
        if total is None and hasattr(iterable, "__len__"):
            self.total = len(iterable)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= LOG_EVERY:
            self._line(now)

    def close(self) -> None:
        now = time.perf_counter()
        if now - self.start >= LOG_FINAL and self.last != now:
            self._line(now)
        self.iterable = ()

    def _line(self, now: float) -> None:
        from tqdm import tqdm

        self.last = now
        meter = tqdm.format_meter(self.n, self.total, now - self.start, prefix=self.desc, unit=self.unit, ncols=0)
        print(meter + (f" {self.postfix}" if self.postfix else ""), file=self.file, flush=True)


class _Silent(LineProgress):
    def _line(self, now: float) -> None:
        pass


def progress_bar(
    iterable=None, *, total=None, desc: str = "", unit: str = "it", rank: int = 0, min_total: int = 0, show: bool = True
):
    """A progress bar over `iterable` (or updated by hand with `update(n)`) that suits where output goes.
    Nothing is drawn when `show` is off, on processes other than the first, with SIGNVISION_PROGRESS=0, or
    when `total` is under `min_total` (a bar for a second's work is noise)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not show or not show_progress(rank) or (total is not None and total < min_total):
        return _Silent(iterable, total=total)
    if in_notebook():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit)
