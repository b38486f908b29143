"""Where signvision's progress lines go: Python's `logging`, under the logger named "signvision".

Library code never prints. Each module says what it does with `logger.info(...)`, its logger made by
`get_logger(__name__)` (a child of "signvision"). At import the library adds no handler of its own (a
`NullHandler`, as a library should); the plain-line output is set up by the application's side, as timm's
`setup_default_logging` is called from its `train.py`: the command line calls `setup_default_logging()` first,
and so does the first public call made from a notebook or a script (`sv.train`, `sv.audit`, `run.evaluate`,
...), unless the application set up the "signvision" logger itself before it. That output writes each line
as plain text to `sys.stdout` (whatever it is when the line is written: a terminal, a notebook cell, a test's
capture), and does not pass it on to the root logger, so it shows once. To change that:

    logging.getLogger("signvision").setLevel(logging.WARNING)      # no progress lines at all
    logging.getLogger("signvision").handlers.clear()               # the lines to your own logging set-up ...
    logging.getLogger("signvision").propagate = True               # ... through the root logger's handlers
    sv.train(data, log=lines.append)                               # one call's lines to a callable instead
    sv.train(data, log=lambda *_: None)                            # ... or nowhere

Two context managers do what the `log` callables threaded through every function used to: `log_to(log)` sends
the lines logged inside it to a callable (how a public call honours `log=`), and `prefixed("  [fold 2] ")`
starts each line logged inside it with that text (the folds of a cross-validation).

Reporting never stops the work it reports on: a handler that raises is dealt with as Python's logging deals with
its own handlers' errors (`Handler.handleError`: a traceback on stderr, and the work goes on), and a `log=`
callable that raises is named once on stderr and given no more lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Callable, Iterator

NAME = "signvision"
_prefix: contextvars.ContextVar[str] = contextvars.ContextVar("signvision_log_prefix", default="")
_target: contextvars.ContextVar[list | None] = contextvars.ContextVar("signvision_log_target", default=None)


class _Context(logging.Filter):
    """On each module's logger: adds the current prefix to a record, and hands the line to `log_to`'s callable
    instead of the handlers when one is set (the record then goes no further)."""

    def filter(self, record: logging.LogRecord) -> bool:
        prefix = _prefix.get()
        if prefix:
            record.msg, record.args = prefix + record.getMessage(), None
        target = _target.get()  # [the log= callable, whether it has raised] of the `log_to` in force
        if target is not None:
            log, broken = target
            if not broken:
                try:
                    log(record.getMessage())
                except Exception as e:  # a broken `log=` must not undo the work it reports on
                    target[1] = True
                    sys.stderr.write(f"signvision: the log= callable raised {type(e).__name__}: {e}; its lines stop\n")
            return False
        return True


class _SafeLogger(logging.Logger):
    """A signvision module's logger: each handler's error is handled as the standard handlers handle their own
    (`Handler.handleError`), so a broken handler of the application's never stops a training."""

    def callHandlers(self, record: logging.LogRecord) -> None:
        logger, found = self, 0
        while logger is not None:
            for handler in logger.handlers:
                found += 1
                if record.levelno >= handler.level:
                    try:
                        handler.handle(record)
                    except Exception:
                        handler.handleError(record)
            logger = logger.parent if logger.propagate else None
        if found == 0 and logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


class _Stdout(logging.Handler):
    """The bare message on the `sys.stdout` of the moment the line is written (a notebook swaps it per cell)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # a closed stream must not stop training
            self.handleError(record)


_CONTEXT = _Context()
_root = logging.getLogger(NAME)
_root.__class__ = _SafeLogger
_NULL = next((h for h in _root.handlers if isinstance(h, logging.NullHandler)), None) or logging.NullHandler()
if _NULL not in _root.handlers:  # a reload adds no second one
    _root.addHandler(_NULL)
_root.addFilter(_CONTEXT)
_set_up = False  # whether setup_default_logging has run in this process (then the application's changes stand)


def setup_default_logging() -> None:
    """The plain-line output: the "signvision" logger's lines as bare text on `sys.stdout`, from INFO up, not
    passed on to the root logger. Once per process, and only if the application has not set up the "signvision"
    logger itself (a handler, a level or `propagate` of its own). The command line calls it first; every public
    call calls it too, so that a notebook shows the lines with nothing set up."""
    global _set_up
    if _set_up:
        return
    _set_up = True
    untouched = _root.handlers == [_NULL] and _root.level == logging.NOTSET and _root.propagate
    if untouched:
        _root.addHandler(_Stdout())
        _root.setLevel(logging.INFO)
        _root.propagate = False


def get_logger(name: str) -> logging.Logger:
    """The logger of a signvision module (`get_logger(__name__)`), which honours `log_to` and `prefixed`."""
    logger = logging.getLogger(name)
    if type(logger) is logging.Logger:
        logger.__class__ = _SafeLogger  # the same object: only how it calls handlers changes
    if _CONTEXT not in logger.filters:
        logger.addFilter(_CONTEXT)
    return logger


@contextlib.contextmanager
def log_to(log: Callable[[str], object] | None) -> Iterator[None]:
    """Inside: every signvision line goes to `log(line)` instead of the logging handlers. None: no change (the
    public calls' default)."""
    check_log(log)
    setup_default_logging()  # a public call from a notebook or a script: the lines show with nothing set up
    if log is None:
        yield
        return
    outer = _target.get()
    same = outer is not None and outer[0] is log  # a public call inside another with the same log= shares its flag
    token = _target.set(outer if same else [log, False])  # the flag: it raised, and gets no more lines
    try:
        yield
    finally:
        _target.reset(token)


def check_log(log) -> None:
    """`log=` is a callable or None (an OptionError naming it otherwise, before any work starts)."""
    if log is not None and not callable(log):
        from signvision.errors import OptionError

        raise OptionError("expected a callable (such as print or a list's append) or None", option="log", value=log)


@contextlib.contextmanager
def prefixed(text: str) -> Iterator[None]:
    """Inside: every signvision line starts with `text` (after any prefix already set)."""
    token = _prefix.set(_prefix.get() + text)
    try:
        yield
    finally:
        _prefix.reset(token)


def silenced() -> contextlib.AbstractContextManager:
    """Inside: no signvision line is shown (work whose lines would only repeat a progress bar's)."""
    return log_to(lambda *_: None)
