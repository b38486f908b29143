"""How fast the command answers (`signvision --help`, `train --help`, an argument error) and `import signvision`.

    python benchmarks/cli_startup.py [--repeat 5]

Prints the median wall-clock seconds of each over `--repeat` runs (a new Python process each time, as
a user's shell starts one). The targets: `signvision --help` under 0.1 s and `python -c "import signvision"`
under 0.3 s on a 2-core machine; the figures are written down in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "signvision --help": ["--help"],
    "signvision train --help": ["train", "--help"],
    "signvision train --epochs x (argument error)": ["train", "--epochs", "x"],
    "signvision predict (missing options)": ["predict"],
    'python -c "import signvision"': None,
    'python -c "import signvision as sv; sv.train"': None,
}
PYTHON_CODE = {
    'python -c "import signvision"': "import signvision",
    'python -c "import signvision as sv; sv.train"': "import signvision as sv; sv.train",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    exe = shutil.which("signvision") or str(Path(sys.executable).parent / "signvision")
    for name, argv in COMMANDS.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            command = [sys.executable, "-c", PYTHON_CODE[name]] if argv is None else [exe, *argv]
            subprocess.run(command, capture_output=True, check=argv is None)
            times.append(time.perf_counter() - start)
        print(f"{name:<48} median {statistics.median(times):.3f} s  (max {max(times):.3f} s, {args.repeat} runs)")


if __name__ == "__main__":
    main()
