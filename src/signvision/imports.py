"""The heavy libraries, imported whole even when Ctrl-C comes in the middle.

`import signvision` loads none of them; the first training, audit or loaded run does. An interrupt that lands
inside `import torch` leaves half-initialised modules behind, and in a notebook every later call then fails
until the kernel restarts. `import_heavy()` imports them with Ctrl-C held back: the imports finish, then the
KeyboardInterrupt is raised (so the cell still stops, and the next call works).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading

HEAVY = ("numpy", "pandas", "torch", "cv2", "albumentations", "sklearn", "scipy")
TIMM = ("torchvision", "timm")  # imported with the first timm model (models/factory.py: timm_module)


def import_heavy(modules=HEAVY) -> None:
    """Import `modules` (those not imported yet); a Ctrl-C meanwhile is raised once they are all in."""
    missing = [m for m in modules if m not in sys.modules]
    if not missing:
        return
    if threading.current_thread() is not threading.main_thread():
        for name in missing:  # signals reach the main thread only: nothing to hold back here
            _try_import(name)
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        for name in missing:
            _try_import(name)
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _try_import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:  # an optional library: the code that needs it says so
        pass
