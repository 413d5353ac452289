"""The VS Code client in a real VS Code: code-server, driven by headless Chromium.

code-server serves VS Code 1.100 on a loopback port; `drive.js` opens it with
VS Code's extension-test protocol (the extension under development and its test
module `test/suite.js` in the URL), and the suite drives the extension through
its commands against the real `cellbox serve` and the test image. It reports
its exit code through the driver and what it saw in facts.json, checked here
as well. scripts/ensure-vscode installs code-server, Chromium and the
extension's build (cached between runs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TEST_IMAGE

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "editor-clients" / "vscode"
CODE_SERVER_VERSION = "4.100.3"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cellbox" / "vscode"
CODE_SERVER = CACHE / f"code-server-{CODE_SERVER_VERSION}" / "node_modules" / ".bin" / "code-server"
DRIVER_TIMEOUT = 900
SERVER_COMMAND = [sys.executable, "-m", "cellbox", "serve"]
# Records what the extension sends its server (tests/editors/stub_server.py).
STUB_SERVER = Path(__file__).resolve().parent / "stub_server.py"

NOTES = """\
# Notes

```python
print("hello from the sandbox")
print(6 * 7)
```

```bash
echo first
sleep 3
echo second
```

```bash
echo about to sleep
sleep 120
```

```python
x = 1
y = x / 0
print(y)
```
"""

CELLS = """\
# %%
print("cell one")

# %% second
print("cell two")
"""

ALL = """\
```sh
echo one
```

```python
print("two")
```
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"code-server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"code-server did not answer on {url}")


@pytest.fixture
def code_server(tmp_path, request):
    """A code-server on a free loopback port with its own user data and extensions folders.

    Workspace trust is off: every folder is trusted. Parametrized with
    "restricted" (indirect), trust is on and nothing is trusted, so a folder
    opens in Restricted Mode (with no prompt).
    """
    restricted = getattr(request, "param", None) == "restricted"
    missing = [p for p in (CODE_SERVER, EXTENSION / "out" / "extension.js", EXTENSION / "node_modules" / "playwright-core") if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(map(str, missing))}: run scripts/ensure-vscode")
    user_data = tmp_path / "user-data"
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(json.dumps({
        # The server command counts only from user settings: a workspace's is ignored.
        "cellbox.serverCommand": SERVER_COMMAND,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "git.enabled": False,
        "editor.minimap.enabled": False,
        "window.restoreWindows": "none",
        "security.workspace.trust.startupPrompt": "never",
    }))
    test_dir = tmp_path / "editor-test"
    test_dir.mkdir()
    # An empty config of its own: code-server would otherwise write one with a password into ~/.config.
    config = tmp_path / "code-server.yaml"
    config.write_text("")
    port = free_port()
    # No marketplace is reachable: point code-server's gallery at a closed
    # loopback port so that its look-ups fail at once and stay on this machine.
    gallery = json.dumps({"serviceUrl": "http://127.0.0.1:9/gallery", "itemUrl": "http://127.0.0.1:9/items"})
    env = dict(os.environ, CELLBOX_VSCODE_TEST_DIR=str(test_dir), EXTENSIONS_GALLERY=gallery)
    log = (tmp_path / "code-server.log").open("w")
    server = subprocess.Popen(
        [
            str(CODE_SERVER), "--config", str(config), "--bind-addr", f"127.0.0.1:{port}", "--auth", "none",
            "--disable-telemetry", "--disable-update-check", *([] if restricted else ["--disable-workspace-trust"]),
            "--user-data-dir", str(user_data), "--extensions-dir", str(tmp_path / "extensions"),
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", server)
        yield port, test_dir
    finally:
        # Its own session: the group holds code-server, its extension host and the cellbox servers it started.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        print((tmp_path / "code-server.log").read_text()[-5000:])


def drive(port: int, test_dir: Path, opened: str, suite: str, screenshot: Path) -> dict:
    """Open VS Code on `opened` (a folder= or workspace= query) running test/`suite`; what the suite saw."""
    host = f"127.0.0.1:{port}"
    payload = json.dumps([
        ["extensionDevelopmentPath", f"vscode-remote://{host}{EXTENSION}"],
        ["extensionTestsPath", f"vscode-remote://{host}{EXTENSION}/test/{suite}"],
    ])
    url = f"http://{host}/?{opened}&payload={urllib.parse.quote(payload)}"
    driver = subprocess.run(
        ["node", str(EXTENSION / "test" / "drive.js"), url, str(test_dir), str(screenshot), str(DRIVER_TIMEOUT)],
        capture_output=True, text=True, timeout=DRIVER_TIMEOUT + 60,
    )
    print(driver.stdout[-20000:], driver.stderr[-5000:])
    facts_file = test_dir / "facts.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    print(json.dumps(facts, indent=2, ensure_ascii=False))
    assert driver.returncode == 0, f"the editor test failed ({driver.returncode}): {facts.get('error')}"
    return facts


def test_vscode_client_runs_blocks_inline(make_workspace, code_server, tmp_path):
    port, test_dir = code_server
    workspace = make_workspace("ws")
    (workspace / "notes.md").write_text(NOTES)
    (workspace / "cells.py").write_text(CELLS)
    (workspace / "all.md").write_text(ALL)

    screenshot = tmp_path / "vscode-run.png"
    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "suite.js", screenshot)

    lines = NOTES.splitlines()
    assert facts["activated"]
    run_lenses = [lens for lens in facts["lenses"] if lens["title"] == "▶ Run"]
    assert [lens["line"] for lens in run_lenses] == [i for i, line in enumerate(lines) if line.startswith("```") and len(line) > 3]
    assert all(lens["command"] == "cellbox.runFromLens" for lens in facts["lenses"])

    first_end = lines.index("print(6 * 7)")
    assert plain(facts["first"]["decorations"])[str(first_end)] == "✓ 42 (+1 lines)"
    assert "hello from the sandbox\n42" in facts["first"]["hover"]
    assert facts["hoverShown"].startswith("✓ ok · exit 0") and "hello from the sandbox\n42" in facts["hoverShown"]

    assert facts["streaming"]["whileRunning"].startswith("⟳ running…")
    assert "first" in facts["streaming"]["whileRunning"] and "second" not in facts["streaming"]["whileRunning"]
    assert plain({"0": facts["streaming"]["final"]}) == {"0": "✓ second (+1 lines)"}

    assert facts["cancel"]["status"] == "cancelled"
    assert facts["cancel"]["decoration"].startswith("⊘ cancelled")

    assert facts["failure"]["status"] == "error"
    assert [d["line"] for d in facts["failure"]["diagnostics"]] == [lines.index("y = x / 0")]
    assert "ZeroDivisionError" in facts["failure"]["diagnostics"][0]["message"]
    assert " s · ZeroDivisionError: division by zero (+" in facts["failure"]["decoration"]

    assert "cellbox: sandbox ready" in facts["statusAfterRuns"]
    assert "cellbox: sandbox stopped" in facts["statusAfterStop"]
    assert "cellbox: sandbox ready" in facts["statusAfterRestart"]
    assert plain({"0": facts["shiftEnter"]["decoration"]}) == {"0": "✓ 42 (+1 lines)"}
    assert plain(facts["cell"]) == {"4": "✓ cell two"}
    edits = facts["edits"]
    assert edits["shifted"] == {str(int(line) + 1): text for line, text in edits["beforeEdit"].items()}
    assert edits["undone"] == edits["beforeEdit"]
    assert facts["runAll"] == {"blocks": 2, "decorations": {"1": "✓ one", "5": "✓ two"}}
    assert facts["grown"] == {"2": "✓ three (+1 lines)", "6": "✓ two"}  # the result of before it grew is gone
    keep_screenshots(screenshot, tmp_path / "vscode-running.png")


def plain(decorations: dict[str, str]) -> dict[str, str]:
    """Decorations without their times, which vary: "✓ 0.21 s · 42" is "✓ 42"."""
    return {line: re.sub(r" \d+\.\d+ s( ·)?", "", text, count=1) for line, text in decorations.items()}


def keep_screenshots(*pictures: Path) -> None:
    for picture in pictures:
        assert picture.exists() and picture.stat().st_size > 10_000
        # CELLBOX_VSCODE_SCREENSHOTS=docs/images refreshes the README's pictures.
        if os.environ.get("CELLBOX_VSCODE_SCREENSHOTS"):
            shutil.copyfile(picture, Path(os.environ["CELLBOX_VSCODE_SCREENSHOTS"]) / picture.name)


def test_each_folder_of_a_multi_root_workspace_has_its_own_server(make_workspace, code_server, tmp_path):
    port, test_dir = code_server
    folders = []
    for name in ("alpha", "beta"):
        folder = make_workspace(name)
        (folder / "notes.md").write_text('```sh\ncat name.txt\necho "$GREETING"\n```\n')
        # Read inside the sandbox: each folder's block must run in that folder's own mount.
        (folder / "name.txt").write_text(f"I am {name}\n")
        # And with that folder's own cellbox.sandbox setting, which reaches its server
        # as workspaceSettings (env loosens nothing, so the server uses it).
        (folder / ".vscode").mkdir()
        (folder / ".vscode" / "settings.json").write_text(json.dumps({"cellbox.sandbox": {"env": {"GREETING": f"hello {name}"}}}))
        folders.append(folder)
    workspace_file = tmp_path / "two.code-workspace"
    workspace_file.write_text(json.dumps({"folders": [{"path": str(folder)} for folder in folders]}))
    facts = drive(port, test_dir, f"workspace={urllib.parse.quote(str(workspace_file))}", "multiRoot.js", tmp_path / "unused.png")
    for name in ("alpha", "beta"):
        assert facts["folders"][name]["status"] == "ok"
        assert plain(facts["folders"][name]["decorations"]) == {"2": f"✓ hello {name} (+1 lines)"}
        assert "cellbox: sandbox ready" in facts["folders"][name]["statusBar"]


def set_user_settings(test_dir: Path, settings: dict) -> None:
    """Merge `settings` into the user settings of the code-server whose test folder is `test_dir`, before drive()."""
    path = test_dir.parent / "user-data" / "User" / "settings.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **settings}))


def test_workspace_settings_cannot_choose_the_server_or_loosen_the_sandbox(make_workspace, code_server, tmp_path):
    """Code run in the sandbox can write .vscode/settings.json (issue #11): the
    extension takes the server command from user settings only, and sends the
    workspace's cellbox.sandbox as workspaceSettings, which the server treats
    as a workspace file, not as the user's own. Against the stub server, which
    records what it receives; the server's approval question is answered with
    its button, as a user would."""
    port, test_dir = code_server
    stub_log = test_dir / "stub.jsonl"
    set_user_settings(test_dir, {
        "cellbox.serverCommand": [sys.executable, str(STUB_SERVER), str(stub_log)],
        "cellbox.sandbox": {"timeout": 30},
    })
    workspace = make_workspace("ws")
    (workspace / "notes.md").write_text("```sh\necho hi\n```\n")
    pwned = test_dir / "pwned"
    (workspace / ".vscode").mkdir()
    (workspace / ".vscode" / "settings.json").write_text(json.dumps({
        "cellbox.serverCommand": ["sh", "-c", f"touch {pwned}"],
        "cellbox.sandbox": {"network": "bridge", "env": {"FROM": "workspace"}},
    }))

    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "trust.js", tmp_path / "unused.png")
    keep_screenshots(tmp_path / "vscode-approval.png")

    assert facts["trusted"]  # code-server runs with --disable-workspace-trust: the case of a trusted workspace
    assert not pwned.exists() and not (test_dir / "pwned-after-rewrite").exists()
    assert facts["initializationOptions"] == {
        "timeout": 30,
        "workspaceSettings": {"network": "bridge", "env": {"FROM": "workspace"}},
    }
    warning = facts["serverCommandWarning"]
    assert "cellbox.serverCommand in ws's .vscode/settings.json is ignored" in warning and "user settings" in warning

    # The server's window/showMessageRequest, as vscode-languageclient shows it: a notification with its actions.
    assert facts["question"]["message"].startswith(f"cellbox: {workspace}/cellbox.toml asks to loosen the sandbox: ")
    assert [b for b in facts["question"]["buttons"] if b] == ["Allow", "Not now"]
    assert facts["answers"] == [{"title": "Allow"}]
    assert facts["run"]["status"] == "ok" and plain(facts["run"]["decorations"]) == {"1": "✓ Allow"}

    assert facts["trustSent"] == {"command": "cellbox.trust", "arguments": [{"workspace": str(workspace)}]}
    assert facts["trust"]["settings"] == ['network = "bridge"']
    assert facts["trustMessage"] == (
        f'cellbox: allowed for {workspace}: network = "bridge" (from {workspace}/cellbox.toml).'
    )

    # Rewritten by a block: restarted with the new values, still only as workspaceSettings, and the user's command.
    assert facts["afterRewrite"] == {"timeout": 30, "workspaceSettings": {"network": "host", "timeout": 5}}


@pytest.mark.parametrize("code_server", ["restricted"], indirect=True)
def test_in_restricted_mode_no_workspace_setting_reaches_the_server(make_workspace, code_server, tmp_path):
    """In an untrusted workspace VS Code hides the workspace's values of the
    restricted settings, and the extension sends no workspaceSettings; the
    approval question and the trust command work as in a trusted one."""
    port, test_dir = code_server
    stub_log = test_dir / "stub.jsonl"
    set_user_settings(test_dir, {
        "cellbox.serverCommand": [sys.executable, str(STUB_SERVER), str(stub_log)],
        "cellbox.sandbox": {"timeout": 30},
    })
    workspace = make_workspace("ws")
    (workspace / "notes.md").write_text("```sh\necho hi\n```\n")
    pwned = test_dir / "pwned"
    (workspace / ".vscode").mkdir()
    (workspace / ".vscode" / "settings.json").write_text(json.dumps({
        "cellbox.serverCommand": ["sh", "-c", f"touch {pwned}"],
        "cellbox.sandbox": {"network": "bridge"},
    }))

    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "trust.js", tmp_path / "unused.png")

    assert facts["trusted"] is False
    assert not pwned.exists()
    assert facts["initializationOptions"] == {"timeout": 30}
    assert facts["answers"] == [{"title": "Allow"}]
    assert facts["trustSent"] == {"command": "cellbox.trust", "arguments": [{"workspace": str(workspace)}]}


def test_packaged_vsix_installs_into_vscode(tmp_path):
    """The .vsix CI builds installs with VS Code's own installer and carries its runtime dependencies."""
    version = json.loads((EXTENSION / "package.json").read_text())["version"]
    vsix = EXTENSION / f"cellbox-{version}.vsix"
    if not (CODE_SERVER.exists() and vsix.exists()):
        pytest.fail(f"missing {CODE_SERVER} or {vsix}: run scripts/ensure-vscode")
    extensions = tmp_path / "extensions"
    config = tmp_path / "code-server.yaml"
    config.write_text("")
    base = [str(CODE_SERVER), "--config", str(config), "--user-data-dir", str(tmp_path / "user-data"),
            "--extensions-dir", str(extensions)]
    env = dict(os.environ, EXTENSIONS_GALLERY=json.dumps({"serviceUrl": "http://127.0.0.1:9/gallery"}))
    subprocess.run([*base, "--install-extension", str(vsix)], check=True, env=env, timeout=120)
    listed = subprocess.run([*base, "--list-extensions", "--show-versions"], check=True, env=env, timeout=120,
                            capture_output=True, text=True).stdout
    assert f"cellbox.cellbox@{version}" in listed.split()
    installed = extensions / f"cellbox.cellbox-{version}"
    assert (installed / "out" / "extension.js").is_file()
    assert (installed / "node_modules" / "vscode-languageclient" / "package.json").is_file()
    assert not (installed / "src").exists() and not (installed / "test").exists()


EDITING = """\
Prose at the top.

```python
print("one")
```

Some prose between the blocks.

```bash
echo start
sleep 4
echo done
```

```python
x = 1
print(undefined_name)
```
"""


def test_results_follow_edits_and_show_whole_output_beside_the_code(make_workspace, code_server, tmp_path):
    """Issue 13's VS Code items 1, 2, 3 and 5 (test/editing.js): Shift+Enter in
    prose is a new line and in a block runs it and moves on; the status bar
    says the sandbox's state; a block's whole output is beside its code; lines
    typed above a running block leave its result on it and nothing behind;
    Clear Results. Takes vscode-output.png and vscode-edited.png."""
    port, test_dir = code_server
    workspace = make_workspace("ws")
    (workspace / "doc.md").write_text(EDITING)
    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "editing.js", tmp_path / "unused.png")
    assert facts["failed"] == []
    assert facts["prose"]["linesAfter"] == facts["prose"]["linesBefore"] + 1 and facts["prose"]["runs"] == 0
    assert facts["advance"]["cursor"] == facts["advance"]["expected"]
    assert "sandbox ready" in facts["statusIdle"] and "sandbox stopped" in facts["statusStopped"]
    assert "Traceback (most recent call last):" in facts["failure"]["beside"]
    assert not any(text.startswith("⟳") for text in facts["edited"]["decorations"].values())
    assert facts["cleared"]["decorations"] == {}
    keep_screenshots(tmp_path / "vscode-output.png", tmp_path / "vscode-edited.png")


def test_a_failed_server_start_is_tried_again(make_workspace, code_server, tmp_path):
    """Issue 13's item 4 (test/retry.js): with no cellbox on the extension
    host's PATH (the suite sets it: code-server computes its own) a run says
    so each time, and once cellbox is installed there the next run starts the
    server without reloading the window."""
    port, test_dir = code_server
    set_user_settings(test_dir, {"cellbox.serverCommand": []})
    workspace = make_workspace("ws")
    (workspace / "doc.md").write_text("```sh\necho installed now\n```\n")
    # What the test installs on PATH halfway: this checkout's cellbox.
    (test_dir / "cellbox-to-install").write_text(f'#!/bin/sh\nexec {sys.executable} -m cellbox "$@"\n')
    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "retry.js", tmp_path / "unused.png")
    assert facts["installed"]["status"] == "ok"


SESSION = """\
# Analysis in one session

```python
greeting = "kept"
n = 41
```

```python
n += 1
print(greeting, n)
```

```python
import matplotlib.pyplot as plt
plt.figure(figsize=(5, 3))
plt.plot([1, 3, 2])
plt.show()
```

```python
import pandas as pd
frame = pd.DataFrame({"city": ["Oslo", "Lima", "Quito"], "n": [1, 2, 3]})
frame
```

```python
import time
plt.figure(figsize=(3, 2))
plt.bar(["a", "b"], [2, 1])
plt.show()
print("drawn, now waiting", flush=True)
time.sleep(4)
```

```python
from IPython.display import HTML
HTML('''<b>bold from the kernel</b><script>document.title = "script ran"</script>
<img src="http://127.0.0.1:9/remote.png" onerror="document.title = 'handler ran'">''')
```
"""


def test_a_session_keeps_state_and_draws_plots_and_tables_beside_the_code(make_workspace, code_server, tmp_path):
    """Issue 14's VS Code items (test/session.js): with mode = "session" a
    variable set by one block is there in the next; a matplotlib figure and a
    pandas DataFrame are drawn in the webview beside the code (as the browser
    shows it), a figure while its block still runs, an HTML output without
    running its script; the status bar says the session's state; Restart Session
    empties it, and says so for a file that has no session. Takes
    vscode-session.png."""
    port, test_dir = code_server
    workspace = make_workspace("ws", f'image = "{TEST_IMAGE}"\nmode = "session"\n')
    (workspace / "analysis.md").write_text(SESSION)
    (workspace / "other.md").write_text("```python\nprint('never run')\n```\n")
    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "session.js", tmp_path / "unused.png")
    assert facts["failed"] == []
    assert facts["state"]["second"]["output"] == "kept 42\n"
    assert facts["state"]["second"]["session"] == str(workspace / "analysis.md")
    assert "cellbox: session idle" in facts["statusIdle"]
    page = facts["webviews"]  # the webview as the browser drew it
    assert page["images"][0]["src"].startswith("data:image/png;base64,")
    assert "Oslo" in page["tables"][0]
    assert facts["scripts"]["page"]["title"] == "analysis.md · cellbox displays"  # neither the script nor the handler ran
    assert facts["live"]["whileRunning"]["images"] == 2 and facts["live"]["whileRunning"]["decoration"].startswith("⟳ running…")
    assert "NameError: name 'n' is not defined" in facts["restart"]["after"]["output"]
    keep_screenshots(tmp_path / "vscode-session.png")


def test_the_first_run_shows_the_environment_build_step_in_the_status_bar(make_workspace, code_server, tmp_path):
    """Issue 15 (test/environment.js): the first run builds the environment
    the user's cellbox.sandbox declares (trusted; offline, with a setup step
    slow enough to watch), and the status bar shows the server's progress,
    "building environment (step N/M): …": in cellbox's own item, and in
    vscode-languageclient's window progress (after its title, where it is
    clipped); then the block's result, and the step is gone. make_workspace
    removes the image it builds."""
    port, test_dir = code_server
    workspace = make_workspace("ws")
    # The echo makes the declaration this workspace's own (see the Neovim test's).
    environment = {"network": "none", "setup": [f"echo {workspace}", "sleep 8"]}
    set_user_settings(test_dir, {"cellbox.sandbox": {"image": TEST_IMAGE, "environment": environment}})
    (workspace / "notes.md").write_text("```python\nprint('built and ran')\n```\n")

    facts = drive(port, test_dir, f"folder={urllib.parse.quote(str(workspace))}", "environment.js", tmp_path / "unused.png")

    step = r"building environment \(step (\d+)/(\d+)\): "
    assert re.search(step, facts["building"]), facts["building"]
    slow = re.search(step + "RUN sleep 8", facts["slowStep"])
    # The last step but one: the image's labels come last (they carry its hash).
    assert slow and int(slow[1]) == int(slow[2]) - 1, facts["slowStep"]
    assert facts["slowStep"].startswith("Building the environment (cellbox-env:")  # the progress's title
    assert re.fullmatch(r"\$\(sync~spin\) cellbox: " + step + "RUN sleep 8", facts["cellboxItem"]), facts["cellboxItem"]
    assert facts["cellboxItemAfter"] == "$(vm-running) cellbox: sandbox ready"
    assert facts["status"] == "ok"
    assert plain(facts["decorations"]) == {"1": "✓ built and ran"}
    keep_screenshots(tmp_path / "vscode-environment.png")
