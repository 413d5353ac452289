"""cellbox's one error hierarchy.

Every failure a user can act on is a `CellboxError` with a message that says
what was wrong and what to do. Each class carries the JSON-RPC error code it
is answered with; `lsp/features.py` maps them in one place.
"""


class CellboxError(Exception):
    """Root of every error cellbox reports to a client."""

    code = -32603  # JSON-RPC internal error, for subclasses that do not say

    @property
    def message(self) -> str:
        return str(self)


class InvalidParams(CellboxError):
    """A request's arguments are wrong; the message names the field."""

    code = -32602


class ConfigError(CellboxError):
    """A configuration value is invalid; the message names the key and file."""

    code = -32001


class EngineUnavailable(CellboxError):
    """The Docker engine does not answer; the message says where we looked."""

    code = -32002


class ImageUnavailable(CellboxError):
    """The sandbox image is missing and could not be pulled."""

    code = -32003


class SandboxFailed(CellboxError):
    """The engine answered but the sandbox container could not be used."""

    code = -32004
