"""`python -m signvision ...` is the same as the `signvision` console script."""

from signvision.cli.commands import main

if __name__ == "__main__":
    raise SystemExit(main())
