"""User-facing errors: one line, no traceback, non-zero exit in the CLI."""


class RagError(Exception):
    """An error whose message is meant for the user as-is (one line)."""
