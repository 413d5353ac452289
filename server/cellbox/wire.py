"""Everything that crosses the wire: command arguments and results.

These are plain attrs classes with no pygls in them. `converter` turns them
into JSON-ready dicts with camelCase keys and EVERY field present (lsprotocol's
own converter drops fields equal to their default, which would make `exitCode:
0` or `codeFile: null` vanish), and structures incoming arguments strictly, so
that `"timeout": "5"` or a misspelt key is an error naming the field instead
of a silent coercion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from cellbox.errors import InvalidParams

T = TypeVar("T")


# ---------------------------------------------------------------- arguments


@attrs.define
class BlockParams:
    """One code block to run."""

    language: str
    """Language of the block, e.g. ``python``, ``bash``; case-insensitive, ``py`` and ``js`` are aliases."""
    code: str
    """The block's source text."""


@attrs.define
class Position:
    """A place in a document, as in LSP: 0-based line and character."""

    line: int
    character: int


@attrs.define
class Range:
    start: Position
    end: Position


@attrs.define
class ExecuteParams:
    """Argument of ``cellbox.execute``: either ``blocks``, or ``uri`` with one
    of ``position``, ``range``, ``block`` or ``all``."""

    blocks: list[BlockParams] | None = None
    """Blocks to run in order; the run stops at the first non-zero exit."""
    uri: str | None = None
    """A document whose blocks to run (open in the client, or on disk)."""
    position: Position | None = None
    """Run the block under this position of ``uri``."""
    range: Range | None = None
    """Run the selected lines of ``uri`` as one block, in the document's language."""
    block: int | None = None
    """Run the Nth runnable block of ``uri``, counting from 1."""
    all: bool = False
    """Run every runnable block of ``uri`` in order."""
    workspace: str | None = None
    """Workspace folder as a ``file://`` URI or a path; defaults to the first workspace of ``initialize``."""
    timeout: float | None = None
    """Seconds each block may run (>= 1); defaults to the workspace's configured timeout."""
    run_id: str | None = None
    """A name the client chooses for this run, to cancel it with ``cellbox.cancel``."""
    session: str | None = None
    """Run Python blocks in this named session (a kernel that keeps state), whatever
    the configured ``mode``; in session mode it defaults to one session per document."""


@attrs.define
class CancelParams:
    """Argument of ``cellbox.cancel``."""

    run_id: str
    """The ``runId`` given to ``cellbox.execute``."""


@attrs.define
class CancelResult:
    run_id: str
    cancelled: bool
    """True when a run of that id was going (or waiting its turn) and is now stopped."""


@attrs.define
class WorkspaceParams:
    """Argument of ``cellbox.restart`` and ``cellbox.stop``."""

    workspace: str | None = None
    """Workspace folder as a ``file://`` URI or a path; defaults to the first workspace."""
    session: str | None = None
    """``cellbox.restart`` only: restart this session's kernel alone (its state is
    lost), not the sandbox. A document's session is named by its path."""


@attrs.define
class StatusParams:
    """Argument of ``cellbox.status`` (takes no fields)."""


# ------------------------------------------------------------------ results


@attrs.define
class DisplayOutput:
    """One rich output: the MIME bundle a Jupyter kernel sent (``display_data``
    or ``execute_result``), and each type saved as a file for clients that
    cannot render it."""

    data: dict[str, Any]
    """MIME type to content: text for text types, base64 for ``image/png`` and
    ``image/jpeg``, an object for ``application/json``."""
    files: dict[str, str]
    """MIME type to the path of a file holding it, on the daemon's side."""


@attrs.define
class DisplayNotification:
    """``cellbox/display``: a rich output of a running block, sent as it comes, before the response."""

    run_id: str
    block_index: int
    display: DisplayOutput


@attrs.define
class SessionInfo:
    """One session in ``cellbox.status``."""

    name: str
    state: str
    """``idle``, ``busy`` or ``dead``."""
    blocks_run: int
    memory_bytes: int | None = None
    """The kernel's resident memory, when the sandbox can tell."""
    language: str = "python"
    """The language of the blocks it runs: a session has a kernel per language."""
    kernel: str = "python3"
    """The kernel's name in the image (its kernelspec)."""


@attrs.define
class BlockResult:
    """What happened to one block that the run reached."""

    language: str
    """The block's language after aliases, lower-case."""
    exit_code: int
    """Exit code of the block's process; 124 on timeout, 1 for a refused block."""
    output: str
    """Combined stdout and stderr, decoded as UTF-8 with replacement."""
    code_file: str | None
    """Path on the daemon's side of the file the block was saved to, or null when it was refused."""
    executed: bool
    """Whether the block was run (false when only saved, or refused)."""
    timed_out: bool
    """Whether the block was killed at the timeout."""
    duration_ms: float
    """Wall time spent on this block."""
    status: str
    """Why it ended (cellbox.vocabulary.Status): ok, error (non-zero exit), timeout, oom
    (memory limit), cancelled, output_limit (the file size limit ended it), not_executed
    (saved only, or refused), interrupted (the sandbox was restarted or stopped under it)."""
    truncated: bool
    """Whether its output went past the output limit and was cut (the block ran on)."""
    range: Range | None
    """Where the block's code is in its document; null for blocks given as text."""
    extent: Range | None
    """The whole block, its fence lines or cell marker included (a client draws
    results under its end); null for blocks given as text."""
    block_number: int | None
    """The block's number among its document's runnable blocks, from 1 (as
    ``block`` takes it); null for blocks given as text and for a selection."""
    original_output: str | None
    """The output as the block wrote it, when ``output`` differs: there, the
    places where it names the file the sandbox ran (a traceback's ``File
    "/cellbox/blocks/tmp_code_….py", line 3``) name the document and its
    line instead (``File "notes.md", line 27``), or ``<block N>`` for a block
    given as text. Null when nothing was renamed."""
    state_lost: bool = False
    """Session mode: whether the session's state was lost during this block (its
    kernel was killed at the timeout, ignored an interrupt, or died); the next
    block starts a new kernel. Always false in script mode."""
    displays: list[DisplayOutput] = attrs.field(factory=list)
    """Rich outputs the block showed (plots, tables), in order, as MIME bundles."""
    session: str | None = None
    """The session the block ran in; null in script mode."""


@attrs.define
class SkippedBlock:
    """A block of the request that never started: an earlier one failed, or the run was cancelled."""

    block_index: int
    """Its place in the request, from 0 (as in ``cellbox/blockStarted``)."""
    block_number: int | None
    """Its number in its document, from 1; null for blocks given as text."""
    language: str
    """Its language after aliases, lower-case."""
    range: Range | None
    """Where its code is in its document; null for blocks given as text."""
    extent: Range | None
    """The whole block, fence lines or cell marker included; null for blocks given as text."""


@attrs.define
class ExecuteResult:
    """Result of ``cellbox.execute``; the top-level fields keep the seed executor's meaning."""

    exit_code: int
    """Exit code of the last block reached (0 when all succeeded)."""
    output: str
    """Output of all blocks reached, concatenated."""
    code_file: str | None
    """File of the first block saved, or null when none was."""
    timed_out: bool
    """Whether any block timed out."""
    duration_ms: float
    """Wall time of the whole request, container start included."""
    workspace: str
    """Absolute path of the workspace the blocks ran in."""
    container: str
    """Name of the workspace's sandbox container."""
    blocks: list[BlockResult]
    """One entry per block reached, in order."""
    skipped: list[SkippedBlock]
    """The blocks after the one the run stopped at, which never started, in order (empty when all ran)."""
    status: str
    """The last block's status."""
    truncated: bool
    """Whether any block's output was cut."""
    run_id: str
    """The run's id: the client's runId, or one the server chose (see cellbox/output)."""


@attrs.define
class BlockStartedNotification:
    """``cellbox/blockStarted``: a block of a run begins; sent before any of its output."""

    run_id: str
    block_index: int
    """Its place in the request, from 0."""
    block_number: int | None
    """Its number among its document's runnable blocks, from 1 (as ``block`` takes
    it); null for blocks given as text and for a selection."""
    language: str
    range: Range | None
    """Where the block's code is in its document (null for blocks given as text), so a
    client can show the run at the right place before the response comes."""
    extent: Range | None
    """The whole block, fence lines or cell marker included; null for blocks given as text."""


@attrs.define
class OutputNotification:
    """``cellbox/output``: a piece of a running block's output, sent in order, all before the response."""

    run_id: str
    block_index: int
    stream: str
    text: str


@attrs.define
class SandboxState:
    """Result of ``cellbox.restart`` and ``cellbox.stop``."""

    workspace: str
    container: str
    state: str
    """``running`` after restart, ``stopped`` after stop."""


@attrs.define
class SandboxInfo:
    """One sandbox in ``cellbox.status``."""

    workspace: str
    container: str
    state: str
    """The engine's state (``running``, ``exited``, ...), or ``absent`` when no container exists yet."""
    image: str
    sessions: list[SessionInfo] = attrs.field(factory=list)
    """Its session kernels (session mode), as this daemon knows them."""


@attrs.define
class TrustResult:
    """Result of ``cellbox.trust``: the workspace settings files approved as they are now."""

    workspace: str
    files: list[str]
    """The settings files whose exact content is now approved."""
    settings: list[str]
    """Their settings that loosen the sandbox, now applied, as ``key = value``."""


@attrs.define
class StatusResult:
    """Result of ``cellbox.status``."""

    sandboxes: list[SandboxInfo]


# ---------------------------------------------------------------- converter


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _strict(expected: type | tuple[type, ...], label: str) -> Callable[[Any, type], Any]:
    """A structure hook that accepts only values already of the right JSON type."""

    def hook(value: Any, _type: type) -> Any:
        # bool is a subclass of int in Python but not a number in JSON.
        if isinstance(value, bool) and expected is not bool:
            raise TypeError(f"expected {label}, got a boolean")
        if not isinstance(value, expected):
            raise TypeError(f"expected {label}, got {_json_type(value)}")
        return value

    return hook


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(bool, _strict(bool, "a boolean"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    def _float(value: Any, type_: type) -> float:
        number = _strict((int, float), "a number")(value, type_)
        try:
            converted = float(number)
        except OverflowError:
            raise TypeError("expected a number, got one too large to use") from None
        if converted != converted or converted in (float("inf"), float("-inf")):
            raise TypeError("expected a finite number")
        return converted

    conv.register_structure_hook(float, _float)

    def _list_hook(value: Any, type_: Any) -> list:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {_json_type(value)}")
        (item_type,) = type_.__args__
        items, errors = [], []
        for index, item in enumerate(value):
            try:
                items.append(conv.structure(item, item_type))
            except Exception as exc:
                # The note carries the index so that messages say blocks[1].code.
                note = IterableValidationNote(f"index {index}", index, item_type)
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {type_}", errors, type_)
        return items

    conv.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is list, _list_hook
    )

    def unstructure_factory(cls: type) -> Any:
        renames = {a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(cls, conv, **renames)  # type: ignore[arg-type]  # cattrs types its **overrides loosely

    def structure_factory(cls: type) -> Any:
        renames = {a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)}
        inner: Callable[[Any, type], Any] = make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=True, **renames  # type: ignore[arg-type]  # as above
        )

        def structure(value: Any, type_: type) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {_json_type(value)}")
            return inner(value, type_)

        return structure

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    conv.register_structure_hook_factory(attrs.has, structure_factory)
    return conv


converter = _make_converter()


def to_json(value: Any) -> Any:
    """Unstructure a result into JSON-ready data with every field present."""
    return converter.unstructure(value)


def parse(value: Any, cls: type[T], what: str) -> T:
    """Structure `value` as `cls` or raise InvalidParams naming each bad field.

    `what` names the thing being parsed in the message, e.g. "cellbox.execute".
    """
    try:
        return converter.structure(value, cls)
    except Exception as exc:  # cattrs groups every field's error in one exception
        problems = describe_structure_error(exc)
        raise InvalidParams(f"Invalid {what} arguments: " + "; ".join(problems)) from None


def describe_structure_error(exc: Exception) -> list[str]:
    """Turn a cattrs error into lines like ``blocks[0].code: required field missing``."""
    lines = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        message, _, path = line.rpartition(" @ ")
        # Name fields as they are on the wire (runId), not as in Python (run_id).
        field = ".".join(_camel(part) for part in path.removeprefix("$").removeprefix(".").split(".") if part)
        lines.append(f"{field or 'argument'}: {message}")
    return lines


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, TypeError) and str(exc).startswith("expected"):
        return str(exc)  # our strict hooks' own wording
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return "unknown field(s) " + ", ".join(sorted(exc.extra_fields))
    return cattrs.v.format_exception(exc, type_)
