"""Progress lines go through Python's logging ("signvision" logger): shown on stdout with nothing set up, to a
callable with `log=`, nowhere when the level says so, and to the application's own handlers when it asks."""

from __future__ import annotations

import logging

import pytest
from helpers import tiny_config

import signvision as sv
from signvision.logs import get_logger, log_to, prefixed


@pytest.fixture
def signvision_logger():
    logger = logging.getLogger("signvision")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield logger
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]


def test_a_training_s_lines_show_on_stdout_with_nothing_set_up(tiny_zindi, capsys):
    sv.train(config=tiny_config(tiny_zindi, None, epochs=2))
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out and "calibration: temperature" in out


def test_log_callable_takes_the_lines_instead(tiny_zindi, capsys):
    said = []
    sv.train(config=tiny_config(tiny_zindi, None, epochs=2), log=said.append)
    assert capsys.readouterr().out == ""
    assert any(line.startswith("epoch 2/2") for line in said)
    sv.train(config=tiny_config(tiny_zindi, None, epochs=1), log=lambda *_: None)
    assert capsys.readouterr().out == ""


def test_level_and_application_handlers_are_honoured(tiny_zindi, capsys, caplog, signvision_logger):
    signvision_logger.setLevel(logging.WARNING)
    sv.train(config=tiny_config(tiny_zindi, None, epochs=1))
    assert capsys.readouterr().out == ""  # no progress lines at all

    signvision_logger.setLevel(logging.INFO)
    signvision_logger.handlers.clear()
    signvision_logger.propagate = True  # the application's logging set-up takes them
    with caplog.at_level(logging.INFO, logger="signvision"):
        sv.train(config=tiny_config(tiny_zindi, None, epochs=1))
    assert capsys.readouterr().out == ""
    records = [r for r in caplog.records if r.name.startswith("signvision.")]
    assert any(r.getMessage().startswith("epoch 1/1") and r.name == "signvision.training.trainer" for r in records)


def test_prefix_and_target_nest():
    logger, said = get_logger("signvision.test"), []
    with log_to(said.append):
        logger.info("plain")
        with prefixed("  [fold 2] "):
            logger.info("epoch %d", 3)
        with log_to(None):  # None: the lines go where they went
            logger.info("still caught")
    assert said == ["plain", "  [fold 2] epoch 3", "still caught"]


def test_reporting_never_stops_the_work_it_reports_on(tiny_zindi, capsys, signvision_logger):
    """G13 of the fourth adversarial round: a raising handler on the "signvision" logger stopped a training, a
    raising `log=` turned finished work into an exception, and `log=5` failed deep inside fit."""

    class Broken(logging.Handler):
        def emit(self, record):
            raise RuntimeError("handler broken")

    signvision_logger.addHandler(Broken())
    run = sv.train(config=tiny_config(tiny_zindi, None, epochs=2))
    assert run.summary["status"] == "finished"
    captured = capsys.readouterr()
    assert "epoch 2/2" in captured.out and "handler broken" in captured.err  # reported as logging reports it
    signvision_logger.handlers.pop()

    def broken(line):
        raise ZeroDivisionError("division by zero")

    run = sv.train(config=tiny_config(tiny_zindi, None, epochs=2), log=broken)
    assert run.summary["status"] == "finished"
    err = capsys.readouterr().err
    assert err.count("the log= callable raised ZeroDivisionError") == 1, err  # named once, not once a line
    with pytest.raises(sv.OptionError, match="log=5: expected a callable"):
        sv.train(config=tiny_config(tiny_zindi, None, epochs=1), log=5)
    with pytest.raises(sv.OptionError, match="log='x'"):
        sv.lr_find(tiny_zindi, log="x")


def test_importing_adds_no_handler_and_the_application_s_set_up_is_kept():
    """The library adds a NullHandler at import, nothing more; the plain output is set up by the first public
    call (or the command line) only where the application has not set up the "signvision" logger itself."""
    import subprocess
    import sys

    code = """
import logging, signvision.logs as logs
root = logging.getLogger("signvision")
assert [type(h).__name__ for h in root.handlers] == ["NullHandler"], root.handlers
assert root.level == logging.NOTSET and root.propagate
mine = logging.StreamHandler()
root.addHandler(mine)                      # the application's own set-up, before any call
with logs.log_to(None):                    # what every public call enters
    pass
assert root.handlers[-1] is mine and len(root.handlers) == 2 and root.propagate, root.handlers
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

    untouched = code.replace("root.addHandler(mine)", "pass").replace(
        "assert root.handlers[-1] is mine and len(root.handlers) == 2 and root.propagate, root.handlers",
        "assert [type(h).__name__ for h in root.handlers] == ['NullHandler', '_Stdout'] and not root.propagate",
    )
    result = subprocess.run([sys.executable, "-c", untouched], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_broken_log_callable_stops_only_its_own_call(capsys):
    """Whether a `log=` raised belongs to its call, not to the callable's id: a later call's callable (which
    may reuse a freed id) gets its lines, and each broken call is named once."""
    logger = get_logger("signvision.test")

    def broken(line):
        raise ValueError("no")

    for _ in range(2):
        with log_to(broken):
            logger.info("one")
            logger.info("two")
        said = []
        with log_to(said.append):
            logger.info("three")
        assert said == ["three"]
    assert capsys.readouterr().err.count("the log= callable raised ValueError") == 2
