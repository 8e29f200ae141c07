"""The exception types the host shows to users as a single line."""


class BoardtraceError(Exception):
    """A failure the user can act on; tasks.py prints it as one line and exits 1."""


class ConnectionLost(BoardtraceError):
    """The connection to a board dropped while a command ran or a file moved."""
