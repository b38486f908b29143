"""Ctrl-C during the first call's imports: held back until the heavy libraries are in, then raised, so that a
notebook's next call works (F13)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # end to end: `make test` runs it, `make test-fast` does not


def test_ctrl_c_during_the_first_imports_leaves_them_whole():
    code = textwrap.dedent(
        """
        import os, signal, sys, threading
        from signvision.imports import import_heavy
        before = signal.getsignal(signal.SIGINT)
        threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # while torch imports
        try:
            import_heavy()
            print("no interrupt")
        except KeyboardInterrupt:
            print("interrupted after the imports")
        import torch, timm
        print(torch.zeros(2).sum().item(), "timm" in sys.modules)
        print("handler restored", signal.getsignal(signal.SIGINT) is before)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["interrupted after the imports", "0.0 True", "handler restored True"], (
        done.stdout
    )


def test_a_lenet_run_imports_neither_timm_nor_torchvision(tmp_path):
    """timm (and the torchvision it imports) load with the first timm model, not for LeNet: about 3 s of every
    LeNet command's start."""
    from helpers import make_zindi

    data = make_zindi(tmp_path / "z", n_per_class=6)
    code = textwrap.dedent(
        f"""
        import sys, signvision as sv
        sv.train({str(data)!r}, model="lenet", lenet_width=1, epochs=1, image_size=16, augment="none",
                 device="cpu", log=lambda *_: None)
        print("timm" in sys.modules, "torchvision" in sys.modules)
        sv.build_model("resnet18", 3)
        print("timm" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["False", "False", "True"], result.stdout + result.stderr[-2000:]
