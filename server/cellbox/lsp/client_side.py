"""The client's side of a run, as the sandbox sees it: the person who
approves settings (ClientGate) and the editor that hears a run as it goes
(StreamingListener). Both speak to the client through the server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lsprotocol import types

from cellbox import timeouts
from cellbox.sandbox.request import BlockToRun, RunListener, SettingsGate
from cellbox.vocabulary import Notification
from cellbox.wire import BlockStartedNotification, DisplayNotification, DisplayOutput, OutputNotification, to_json

if TYPE_CHECKING:
    from cellbox.lsp.server import CellboxServer

log = logging.getLogger(__name__)

ALLOW = "Allow"
NOT_NOW = "Not now"
APPROVAL_WAIT_SECONDS = 120.0
"""How long a run waits for the user's answer to the approval prompt; an editor
may hide it (VS Code's Do Not Disturb), and the run then goes on without."""


class ClientGate(SettingsGate):
    """This client's user, for a workspace file's settings that loosen the
    sandbox: asked with window/showMessageRequest when the client can show
    one, told with window/showMessage which settings were left out. Each
    question and each notice once per connection, not at every run."""

    def __init__(self, ls: CellboxServer) -> None:
        self.ls = ls
        self._asked: set[str] = set()
        self._told: set[str] = set()

    async def approve(self, question: str) -> bool:
        window = self.ls.client_capabilities.window
        if question in self._asked or window is None or window.show_message is None:
            return False
        self._asked.add(question)
        request = types.ShowMessageRequestParams(
            type=types.MessageType.Warning, message=question,
            actions=[types.MessageActionItem(title=ALLOW), types.MessageActionItem(title=NOT_NOW)],
        )
        try:
            answer = await timeouts.wait_for(self.ls.window_show_message_request_async(request), APPROVAL_WAIT_SECONDS)
        except TimeoutError:
            log.info("no answer to the approval request within %.0f s: the settings stay ignored", APPROVAL_WAIT_SECONDS)
            return False
        except Exception as exc:  # the client cannot answer: the settings stay ignored
            log.info("the client did not answer the approval request: %s", exc)
            return False
        return answer is not None and answer.title == ALLOW

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        if message not in self._told:
            self._told.add(message)
            self.ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))


class StreamingListener(RunListener):
    """Sends a run's output to the client as `cellbox/output` notifications.

    They are written to stdout as the output arrives, on the one event loop
    that later writes the response: every notification of a run reaches the
    client before the run's response, and in the order the block wrote it.
    """

    def __init__(self, ls: CellboxServer, run_id: str, blocks: Sequence[BlockToRun]) -> None:
        self.ls = ls
        self.run_id = run_id
        self.count = len(blocks)
        self.current = 0
        self.current_name = block_name(0, blocks[0]) if blocks else "block 1"
        self.on_block: Callable[[], None] | None = None
        self._stderr: dict[int, list[str]] = {}

    def block_started(self, index: int, block: BlockToRun) -> None:
        self.current = index
        self.current_name = block_name(index, block)
        notice = BlockStartedNotification(self.run_id, index, block.number, block.language, block.range, block.extent)
        self.ls.protocol.notify(Notification.BLOCK_STARTED, to_json(notice))
        if self.on_block is not None:
            self.on_block()

    def output(self, index: int, stream: str, text: str) -> None:
        if stream == "stderr":
            self._stderr.setdefault(index, []).append(text)
        self.ls.protocol.notify(Notification.OUTPUT, to_json(OutputNotification(self.run_id, index, stream, text)))

    def display(self, index: int, output: DisplayOutput) -> None:
        self.ls.protocol.notify(Notification.DISPLAY, to_json(DisplayNotification(self.run_id, index, output)))

    def stderr(self, index: int) -> str:
        return "".join(self._stderr.get(index, []))

    def describe(self, elapsed: float) -> str:
        """The progress message: the block by its number in the document, and
        its place in the run when it has several blocks ("block 3/4 · 1.2 s")."""
        of = f"/{self.count}" if self.count > 1 else ""
        return f"{self.current_name}{of} · {elapsed:.1f} s"


def block_name(index: int, block: BlockToRun) -> str:
    """"block N" by its number in its document; a selection as such; a block
    given as text by its place in the request (as `cellbox run` says it)."""
    if block.number is not None:
        return f"block {block.number}"
    return "selection" if block.range is not None else f"block {index + 1}"
