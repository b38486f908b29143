"""The `signvision` command: each sub-command a thin call to the Python API (commands), its options made
from the config dataclasses (parser), and the demo.

Nothing heavy is imported here, so that `signvision --help` answers at once.
"""

from signvision.cli.commands import main

__all__ = ["main"]
