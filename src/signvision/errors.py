"""The one exception type for a user's mistake: the CLI prints its message as one line and exits 2."""


class UserError(Exception):
    """Bad input (a file, row or option). The message names what is at fault, on one line."""
