"""User-facing errors: one line, no traceback, non-zero exit in the CLI.

Each kind of failure has its own type, so callers (the web UI's Chinese messages, the
REST API's status codes) tell them apart by type, never by message text. Every message
is meant for the user as-is and says how to fix the problem.
"""


class RagError(Exception):
    """An error whose message is meant for the user as-is (one line)."""

    http_status = 400


class BadInput(RagError):
    """A query, quote, k, file or argument that cannot be used."""


class EmptyInput(BadInput):
    """A query or quote with nothing in it."""


class InputTooLong(BadInput):
    """A query or quote above its length limit."""

    def __init__(self, message: str, length: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.length, self.limit = length, limit


class QuoteTooShort(BadInput):
    def __init__(self, message: str, length: int = 0, minimum: int = 0) -> None:
        super().__init__(message)
        self.length, self.minimum = length, minimum


class BadK(BadInput):
    """k outside 1..MAX_K or not a whole number."""


class IndexMissing(RagError):
    """No index has been built in the folder."""

    http_status = 503


class IndexDamaged(RagError):
    """An index whose files fail their checks."""

    http_status = 503


class IndexMismatch(RagError):
    """An index built with another embedder, chunker or backend than the one requested."""

    http_status = 409


class IndexBusy(RagError):
    """Another writer holds the index's lock."""

    http_status = 409


class Overloaded(RagError):
    """Too many costly requests are waiting; the client should retry later."""

    http_status = 429


class CorpusError(RagError):
    """A corpus folder that is missing, not a folder, or holds nothing readable."""


class DiskFull(RagError):
    """The disk filled while writing; the previous index stays current."""

    http_status = 507


class MissingExtra(RagError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, what: str) -> None:
        super().__init__(f"{what} needs the Python package {package!r}; install it with: "
                         f"pip install 'rag[{extra}]' (or run make setup)")
        self.package, self.extra = package, extra


class BackendError(RagError):
    """A search backend that is unreachable, refuses the credentials or has another schema."""

    http_status = 502


def require(module: str, extra: str, what: str):
    """Import an optional dependency, or raise MissingExtra naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(module.split(".")[0], extra, what) from None
