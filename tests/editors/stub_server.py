"""A stand-in for `cellbox serve` that records what an editor client sends it.

The editor tests start it as the client's server command to check what the
client itself decides: which settings go in `initializationOptions` (and which
under `workspaceSettings`), which command and arguments `:CellboxTrust` or
"Trust this workspace's sandbox settings" send, and that the server's
`window/showMessageRequest` reaches the user and their choice comes back.

    python stub_server.py LOG

Every message it receives is appended to LOG as one JSON line. It answers
`initialize`, `shutdown` and `exit`, and two commands:

- `cellbox.trust`: a fixed approval of the workspace it names;
- `cellbox.execute`: first asks the approval question the real server asks
  when a workspace file loosens the sandbox (a warning with the actions Allow
  and Not now), waits for the answer, then answers the run with one block
  whose output is the chosen action's title (or "no answer").

stdlib only, so that it starts fast and depends on nothing of cellbox.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

PROMPT = (
    'cellbox: {workspace}/cellbox.toml asks to loosen the sandbox: network = "bridge". '
    "Allow them for this workspace? Until you do they are ignored; `cellbox trust {workspace}` allows them too."
)


class Stub:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.workspace = ""
        self.next_id = 0
        # Our requests to the client, by id: the execute request waiting for each answer.
        self.asked: dict[int, dict] = {}

    def record(self, message: dict) -> None:
        with self.log.open("a", encoding="utf-8") as file:
            file.write(json.dumps(message) + "\n")

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        sys.stdout.buffer.flush()

    def handle(self, message: dict) -> None:
        self.record(message)
        method = message.get("method")
        if method is None:
            # The client's answer to one of our requests.
            execute = self.asked.pop(message.get("id"), None)
            if execute is not None:
                choice = message.get("result")
                self.answer_run(execute, choice["title"] if isinstance(choice, dict) else "no answer")
            return
        if method == "initialize":
            params = message["params"]
            folders = params.get("workspaceFolders") or []
            root = folders[0]["uri"] if folders else params.get("rootUri") or ""
            self.workspace = unquote(urlparse(root).path)
            self.send({"id": message["id"], "result": {
                "capabilities": {"executeCommandProvider": {"commands": ["cellbox.execute", "cellbox.trust"]}},
                "serverInfo": {"name": "cellbox-stub"},
            }})
        elif method == "shutdown":
            self.send({"id": message["id"], "result": None})
        elif method == "exit":
            sys.exit(0)
        elif method == "workspace/executeCommand":
            self.execute_command(message)
        elif "id" in message:
            self.send({"id": message["id"], "error": {"code": -32601, "message": f"the stub has no {method}"}})

    def execute_command(self, message: dict) -> None:
        command = message["params"]["command"]
        argument = (message["params"].get("arguments") or [{}])[0]
        if command == "cellbox.trust":
            workspace = argument.get("workspace") or self.workspace
            self.send({"id": message["id"], "result": {
                "workspace": workspace,
                "files": [f"{workspace}/cellbox.toml"],
                "settings": ['network = "bridge"'],
            }})
        elif command == "cellbox.execute":
            self.next_id += 1
            request_id = self.next_id
            self.asked[request_id] = message
            self.send({"id": request_id, "method": "window/showMessageRequest", "params": {
                "type": 2,  # Warning
                "message": PROMPT.format(workspace=self.workspace),
                "actions": [{"title": "Allow"}, {"title": "Not now"}],
            }})
        else:
            self.send({"id": message["id"], "error": {"code": -32601, "message": f"the stub has no {command}"}})

    def answer_run(self, execute: dict, output: str) -> None:
        argument = execute["params"]["arguments"][0]
        line = (argument.get("position") or {}).get("line", 0)
        block_range = {"start": {"line": line, "character": 0}, "end": {"line": line + 1, "character": 0}}
        block = {
            "language": "sh", "exitCode": 0, "output": output + "\n", "durationMs": 1, "status": "ok",
            "truncated": False, "range": block_range,
        }
        self.send({"id": execute["id"], "result": {
            "exitCode": 0, "status": "ok", "durationMs": 1, "blocks": [block], "runId": argument.get("runId"),
        }})


def read_message(stream) -> dict | None:
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return json.loads(stream.read(length))


def main() -> None:
    stub = Stub(Path(sys.argv[1]))
    while (message := read_message(sys.stdin.buffer)) is not None:
        stub.handle(message)


if __name__ == "__main__":
    main()
