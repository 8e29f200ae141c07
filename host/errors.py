"""The one exception type the host shows to users as a single line."""


class BoardtraceError(Exception):
    """A failure the user can act on; tasks.py prints it as one line and exits 1."""
