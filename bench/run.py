"""cellbox's benchmark: every figure measured in ONE run, on one machine and image.

Usage: python bench/run.py [--runs N] [--json PATH] [--only SECTION,...]   (or: scripts/dev bench)

Drives a real `cellbox serve` over stdio, as an editor would, and times each
request from sending it to having parsed the answer. Beside it, in the same
container, it measures the floor (the interpreter's own start-up, timed inside
the container) and the reference (the seed executor's method: one plain
`docker exec` per block, done here with the docker SDK; and AG2's
DockerCommandLineCodeExecutor itself for starting, restarting and stopping
sandboxes). It prints a table of medians and p90s, issue 17's table (each
row's cellbox figure beside its reference's), the ratios the targets are
stated in and each target met or MISSED, and writes the same as JSON.
Absolute numbers move with the machine's load; the ratios are what to
compare, since every figure comes from the same minutes.

--only measures some sections (for development); their targets print as
"not measured" when a figure is missing, and results.json is written only by
a full run (or to --json). The copy-mode row needs root, dockerd and unshare
(tests/namespaced_engine.py); without them it prints as not measured, why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import docker
from jsonrpc_client import JsonRpcDaemon
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from cellbox.engine.docker import DockerBackend
from cellbox.sandbox.core import Sandbox
from cellbox.sandbox.request import no_progress
from cellbox.vocabulary import LABEL_WORKSPACE

IMAGE = os.environ.get("CELLBOX_IMAGE", "cellbox-sandbox:bookworm")


def summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"median_ms": round(statistics.median(ordered), 3), "p90_ms": round(p90, 3), "n": len(ordered)}


class Daemon(JsonRpcDaemon):
    """`cellbox serve` driven as an editor drives it (jsonrpc_client.py), with the bench's image."""

    async def start(self, workspace: Path, argv: list[str] | None = None, env: dict[str, str] | None = None,
                    initialization_options: dict | None = None) -> None:
        await super().start(workspace, argv, env, initialization_options or {"image": IMAGE})


class PyglsDaemon:
    """The same through pygls' LanguageClient, for the one row that shows what
    that heavier client adds (lsprotocol's converters in the timed process)."""

    def __init__(self) -> None:
        self.client = LanguageClient("cellbox-bench", "1")
        # Streamed output is part of what a real client receives; take it, ignore it.
        self.client.feature("cellbox/output")(lambda params: None)
        self.client.feature("cellbox/blockStarted")(lambda params: None)
        self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda params: None)

    async def start(self, workspace: Path) -> None:
        await self.client.start_io(sys.executable, "-m", "cellbox", "serve", "--log-level", "WARNING")
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
                initialization_options={"image": IMAGE},
            )
        )
        self.client.initialized(types.InitializedParams())

    async def command(self, name: str, argument: dict) -> tuple[float, dict]:
        started = time.perf_counter()
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=[argument])
        )
        return (time.perf_counter() - started) * 1000, result

    async def stop(self) -> None:
        await asyncio.wait_for(self.client.shutdown_async(None), 60)
        self.client.exit(None)
        await self.client.stop()


async def timed_executes(daemon: Daemon | PyglsDaemon, workspace: Path, language: str, code: str, runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        elapsed, result = await daemon.command(
            "cellbox.execute", {"workspace": str(workspace), "blocks": [{"language": language, "code": code.format(i=i)}]}
        )
        assert result["exitCode"] == 0 and result["output"] == f"{i}\n", result
        samples.append(elapsed)
    return samples


FLOOR_SCRIPT = r"""
import json, subprocess, sys, time
runs = int(sys.argv[1])
def timed(argv):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - t) * 1000)
    return out
print(json.dumps({"python": timed(["python3", "-c", "print(1)"]), "sh": timed(["sh", "-c", "echo 1"])}))
"""


def floor_inside(container, runs: int) -> dict[str, list[float]]:
    result = container.exec_run(["python3", "-c", FLOOR_SCRIPT, str(runs)])
    return json.loads(result.output)


KERNEL_FLOOR_SCRIPT = r"""
import json, sys, time
from jupyter_client.manager import start_new_kernel
runs, starts = int(sys.argv[1]), int(sys.argv[2])
start_ms, roundtrip_ms = [], []
for n in range(starts):
    t = time.perf_counter()
    km, kc = start_new_kernel(kernel_name="python3")
    start_ms.append((time.perf_counter() - t) * 1000)
    if n == 0:
        for i in range(runs):
            t = time.perf_counter()
            reply = kc.execute_interactive("x = %d + 1" % i, output_hook=lambda message: None, timeout=30)
            assert reply["content"]["status"] == "ok"
            roundtrip_ms.append((time.perf_counter() - t) * 1000)
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print(json.dumps({"start": start_ms, "roundtrip": roundtrip_ms}))
"""
"""The kernel's own floor, in the same container and image: jupyter_client
driving an ipykernel there directly (tcp on the container's loopback),
without cellbox: its start-up, and a round trip of a block that prints nothing."""


def kernel_floor(container, runs: int, starts: int) -> dict[str, list[float]]:
    result = container.exec_run(
        ["python3", "-c", KERNEL_FLOOR_SCRIPT, str(runs), str(starts)],
        environment={"HOME": "/tmp", "JUPYTER_RUNTIME_DIR": "/tmp/bench-jupyter"}, demux=True,
    )
    out, err = result.output
    assert result.exit_code == 0, (err or b"").decode(errors="replace")[-2000:]
    return json.loads(out.decode())


async def session_blocks(daemon: Daemon, workspace: Path, runs: int) -> list[float]:
    samples = []
    for i in range(runs):
        elapsed, result = await daemon.command("cellbox.execute", {
            "workspace": str(workspace), "session": "bench", "blocks": [{"language": "python", "code": f"x = {i} + 1"}],
        })
        assert result["exitCode"] == 0 and result["blocks"][0]["session"] == "bench", result
        samples.append(elapsed)
    return samples


def reference_exec(container, workspace: Path, language: str, code: str, runs: int) -> list[float]:
    """The seed's method: write the block to a file, then one `docker exec` running it."""
    samples = []
    command = {"python": "python", "bash": "bash"}[language]
    for i in range(runs):
        started = time.perf_counter()
        text = code.format(i=i)
        name = f"tmp_code_ref_{i}.{language}"
        (workspace / name).write_text(text)
        result = container.exec_run(["timeout", "60", command, name], workdir="/workspace")
        assert result.exit_code == 0 and result.output == f"{i}\n".encode(), result
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def bare_create_start(workspace: Path, runs: int) -> list[float]:
    """Create+start with exactly the sandbox's options (limits, mounts, user,
    tmpfs...), through the same backend, and a main process that does nothing."""
    backend = DockerBackend()
    sandbox = Sandbox(workspace, backend, {"image": IMAGE})
    await sandbox.state()
    spec = sandbox.container.spec(await sandbox.config())
    idle = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 86400 & wait $!; done"]
    samples = []
    for i in range(runs):
        bare = attrs.evolve(spec, name=f"cellbox-bench-bare-{os.getpid()}-{i}", main=idle)
        started = time.perf_counter()
        with sandbox.container.view(bare):  # the nosuid view the sandbox's own start makes too
            await backend.create_container(bare)
            await backend.start_container(bare.name)
        samples.append((time.perf_counter() - started) * 1000)
        await backend.remove_container(bare.name, sandbox.container.label)
    backend.close()
    return samples


def command_line(root: Path, runs: int) -> dict[str, list[float]]:
    """What a script or git hook pays: `cellbox exec` as a new process, through
    the project's daemon; beside it, the least any Python command costs (an
    interpreter that imports nothing) and the shell's way without cellbox, a
    `docker exec` with the docker CLI into the same container."""
    project = root / "cli"
    project.mkdir()
    (project / "cellbox.toml").write_text(f'image = "{IMAGE}"\n')
    cellbox = [sys.executable, "-m", "cellbox"]
    env = {**os.environ, "XDG_RUNTIME_DIR": str(root / "run")}  # a daemon of the bench's own
    (root / "run").mkdir()

    def time_each(argv: list[str], count: int) -> list[float]:
        out = []
        for _ in range(count):
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
            out.append((time.perf_counter() - started) * 1000)
        return out

    subprocess.run([*cellbox, "daemon", "start", str(project)], check=True, env=env, stdout=subprocess.DEVNULL)
    try:
        exec_argv = [*cellbox, "exec", "-L", "sh", "-c", "echo 1", "-w", str(project)]
        subprocess.run(exec_argv, check=True, env=env, stdout=subprocess.DEVNULL)  # the container, warm
        container = docker.from_env().containers.list(filters={"label": f"{LABEL_WORKSPACE}={project}"})[0]
        samples = {"cli_exec_via_daemon": [], "floor_python_process": [], "docker_cli_exec": []}
        for start in range(0, runs, 5):
            n = min(5, runs - start)
            samples["cli_exec_via_daemon"] += time_each(exec_argv, n)
            samples["floor_python_process"] += time_each([sys.executable, "-S", "-c", "pass"], n)
            samples["docker_cli_exec"] += time_each(["docker", "exec", container.id, "sh", "-c", "echo 1"], n)
        return samples
    finally:
        subprocess.run([*cellbox, "daemon", "stop", str(project)], env=env, stdout=subprocess.DEVNULL)


ENV_DECLARATION = 'packages = ["cellbox_bench==1.0"]\nfind_links = "wheels"\nnetwork = "none"\n'


def env_workspace(folder: Path, setup: str = "") -> Path:
    """A workspace declaring an offline environment (a wheel of its own), approved."""
    from cellbox.settings.sources import trust_workspace

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: its tests' wheel maker
    from tests.wheelhouse import make_wheel

    folder.mkdir()
    make_wheel(folder / "wheels", "cellbox_bench", "1.0", "VALUE = 1\n")
    extra = f"setup = [{json.dumps(setup)}]\n" if setup else ""
    (folder / "cellbox.toml").write_text(f'image = "{IMAGE}"\n[environment]\n{ENV_DECLARATION}{extra}')
    trust_workspace(folder)
    return folder


async def _base_is_there() -> None:
    raise AssertionError(f"the bench's image {IMAGE} is on the engine: nothing to pull")


async def environment_figures(daemon: Daemon, root: Path, runs: int) -> dict[str, list[float]]:
    """A cold first run (container created) in a workspace whose environment
    is cached, against the same on the base image, interleaved; and a
    rebuild (one RUN step changed) through cellbox against `docker build` of
    the same Dockerfile by hand, both after the same cached steps."""
    from cellbox.engine.docker import DockerBackend
    from cellbox.sandbox import environment
    from cellbox.settings.sources import resolve_config

    samples: dict[str, list[float]] = {"cold_first_execute_env": [], "cold_first_execute_base": [],
                                        "env_rebuild": [], "env_rebuild_by_hand": []}
    # Built once; every workspace below declares the same, so it is cached.
    first = env_workspace(root / "env-build")
    await daemon.command("cellbox.execute", {"workspace": str(first), "blocks": [{"language": "sh", "code": "true"}]})
    await daemon.command("cellbox.stop", {"workspace": str(first)})
    code = "import cellbox_bench; print(cellbox_bench.VALUE)"
    for i in range(runs):
        for key, folder in (("cold_first_execute_env", env_workspace(root / f"env-cold{i:02d}")),
                            ("cold_first_execute_base", root / f"base-cold{i:02d}")):
            folder.mkdir(exist_ok=True)
            given = code if key.endswith("env") else "print(1)"
            elapsed, result = await daemon.command(
                "cellbox.execute", {"workspace": str(folder), "blocks": [{"language": "python", "code": given}]}
            )
            assert result["output"] == "1\n", result
            samples[key].append(elapsed)
            await daemon.command("cellbox.stop", {"workspace": str(folder)})
    engine = DockerBackend()
    client = docker.from_env()
    try:
        for i in range(3):
            nonce = f"{time.time_ns()}"
            ours = env_workspace(root / f"env-rebuild{i}", setup=f"echo ours {nonce}")
            config = resolve_config(ours, {}, None).config
            assert config.environment is not None
            started = time.perf_counter()
            await environment.Environments(engine).image_for(
                ours, config.environment, IMAGE, no_progress, _base_is_there, None
            )
            samples["env_rebuild"].append((time.perf_counter() - started) * 1000)
            # The same build by hand: its Dockerfile and context, another nonce (so its last steps run too).
            hand = env_workspace(root / f"env-hand{i}", setup=f"echo hand {nonce}")
            hand_config = resolve_config(hand, {}, None).config
            assert hand_config.environment is not None
            base_id = client.images.get(IMAGE).id
            files = environment.read_inputs(hand, hand_config.environment)
            planned = environment.plan(hand_config.environment, base_id, files, hand)
            started = time.perf_counter()
            subprocess.run(["docker", "build", "-q", "--network", "none", "-t", f"cellbox-bench-hand:{i}", "-"],
                           input=planned.context(), check=True, capture_output=True)
            samples["env_rebuild_by_hand"].append((time.perf_counter() - started) * 1000)
    finally:
        engine.close()
        for image in client.images.list(filters={"label": environment.LABEL_ENVIRONMENT}):
            if image.labels.get(environment.LABEL_WORKSPACE, "").startswith(str(root)) or any(
                t.startswith("cellbox-bench-hand:") for t in image.tags
            ):
                client.images.remove(image.id, force=True)
        client.close()
    return samples


def agent_figures(root: Path, runs: int) -> dict[str, list[float]]:
    """AG2's executor on cellbox (with the project's daemon running) against
    AG2's own DockerCommandLineCodeExecutor on the same image: a block each
    way, creating an executor, and cellbox's restart and stop."""
    from autogen.coding import CodeBlock, DockerCommandLineCodeExecutor

    from cellbox.integrations.ag2 import CellboxCodeExecutor

    samples: dict[str, list[float]] = {key: [] for key in (
        "ag2_block_cellbox", "ag2_block_reference", "ag2_executor_create", "ag2_restart", "ag2_stop")}
    workspace = root / "ag2"
    workspace.mkdir()
    cellbox_cli = [sys.executable, "-m", "cellbox"]
    subprocess.run([*cellbox_cli, "daemon", "start", str(workspace)], check=True, capture_output=True)
    reference = DockerCommandLineCodeExecutor(image=IMAGE, work_dir=root / "ag2-reference")
    try:
        for _ in range(5):
            started = time.perf_counter()
            executor = CellboxCodeExecutor(image=IMAGE, work_dir=workspace, stop_container=False)
            samples["ag2_executor_create"].append((time.perf_counter() - started) * 1000)
            executor.stop()
        executor = CellboxCodeExecutor(image=IMAGE, work_dir=workspace)
        for i in range(2):  # warm: the container is up, the connection open
            executor.execute_code_blocks([CodeBlock(language="python", code=f"print({i})")])
            reference.execute_code_blocks([CodeBlock(language="python", code=f"print({i})")])
        for i in range(runs):
            for key, runner in (("ag2_block_cellbox", executor), ("ag2_block_reference", reference)):
                started = time.perf_counter()
                result = runner.execute_code_blocks([CodeBlock(language="python", code=f"print({i})")])
                samples[key].append((time.perf_counter() - started) * 1000)
                assert result.exit_code == 0 and result.output.strip() == str(i), result
        for _ in range(3):
            started = time.perf_counter()
            executor.restart()
            samples["ag2_restart"].append((time.perf_counter() - started) * 1000)
        for _ in range(3):
            executor = CellboxCodeExecutor(image=IMAGE, work_dir=workspace)
            executor.execute_code_blocks([CodeBlock(language="sh", code="true")])
            started = time.perf_counter()
            executor.stop()
            samples["ag2_stop"].append((time.perf_counter() - started) * 1000)
    finally:
        reference.stop()
        subprocess.run([*cellbox_cli, "stop"], cwd=workspace, capture_output=True)
        subprocess.run([*cellbox_cli, "daemon", "stop", str(workspace)], capture_output=True)
    return samples


async def mcp_figures(daemon: Daemon, root: Path, runs: int) -> dict[str, list[float]]:
    """One MCP tools/call of a print through `cellbox mcp` (its own server)
    against a cellbox.execute of the same block over LSP, both warm."""
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    # Two workspaces: a container's warm runner serves one server; a second
    # one on the same container would go by docker exec.
    workspace, direct = root / "mcp", root / "mcp-direct"
    for folder in (workspace, direct):
        folder.mkdir()
        (folder / "cellbox.toml").write_text(f'image = "{IMAGE}"\n')
    samples: dict[str, list[float]] = {"mcp_call": [], "execute_same_block": []}
    parameters = StdioServerParameters(command=sys.executable, args=["-m", "cellbox", "mcp", str(workspace)],
                                       env=dict(os.environ))
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for i in range(3):
            await session.call_tool("run_code", {"code": f"print({i})"})
            await daemon.command("cellbox.execute", {"workspace": str(direct),
                                                     "blocks": [{"language": "python", "code": f"print({i})"}]})
        for i in range(runs):
            started = time.perf_counter()
            result = await session.call_tool("run_code", {"code": f"print({i})"})
            samples["mcp_call"].append((time.perf_counter() - started) * 1000)
            assert result.structured_content["output"] == f"{i}\n", result
            elapsed, answer = await daemon.command("cellbox.execute", {
                "workspace": str(direct), "blocks": [{"language": "python", "code": f"print({i})"}]})
            assert answer["output"] == f"{i}\n"
            samples["execute_same_block"].append(elapsed)
        await session.call_tool("stop", {})
    await daemon.command("cellbox.stop", {"workspace": str(direct)})
    return samples


IDLE_MAIN = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 86400 & wait $!; done"]
"""A main process that does nothing (and stops at once when asked)."""


def docker_run_d(client: docker.DockerClient, name: str, floor_runs: int = 0) -> tuple[float, list[float]]:
    """One plain `docker run -d` of the image (the engine's defaults, a
    do-nothing main process), timed until the SDK has it running; then, if
    asked, the in-container `python3 -c` floor in it; removed after."""
    started = time.perf_counter()
    container = client.containers.run(IMAGE, IDLE_MAIN, detach=True, name=name)
    elapsed = (time.perf_counter() - started) * 1000
    try:
        floor = floor_inside(container, floor_runs)["python"] if floor_runs else []
    finally:
        container.remove(force=True)
    return elapsed, floor


def project_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "cellbox.toml").write_text(f'image = "{IMAGE}"\n')
    return folder


EDITOR_SERVE = [sys.executable, "-m", "cellbox", "serve", "--eager", "--log-level", "WARNING"]
"""What the editor clients start: the sandbox comes up as `initialize` names the folder."""


async def editor_first_result(folder: Path, argv: list[str] | None = None) -> float:
    """What an editor opening a file waits for: spawning the server,
    `initialize` naming the folder, and the answer to the first block, a
    python print. The server is shut down afterwards (not timed)."""
    started = time.perf_counter()
    editor = Daemon()
    await editor.start(folder, argv)
    _, result = await editor.command(
        "cellbox.execute", {"workspace": str(folder), "blocks": [{"language": "python", "code": "print(0)"}]}
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert result["exitCode"] == 0 and result["output"] == "0\n", result
    if "--connect" not in (argv or []):  # the server's own sandbox: stopped, as an editor closing would leave it
        await editor.command("cellbox.stop", {"workspace": str(folder)})
    await editor.stop()
    return elapsed


async def first_result_figures(root: Path, runs: int) -> dict[str, list[float]]:
    """The editor's first result, from spawning `cellbox serve --eager` to the first
    block's answer, with the workspace's container not there (a fresh folder
    each time), against a plain `docker run -d` of the image plus the
    in-container `python3 -c` floor, interleaved; and the same through
    `cellbox serve --connect` when the project's daemon already runs (and
    has its container up from an earlier editor session)."""
    samples: dict[str, list[float]] = {key: [] for key in (
        "editor_first_result_cold", "docker_run_d", "floor_python_fresh", "editor_first_result_daemon")}
    client = docker.from_env()
    try:
        for i in range(runs):
            samples["editor_first_result_cold"].append(
                await editor_first_result(project_folder(root / f"editor{i:02d}"), EDITOR_SERVE))
            elapsed, floor = docker_run_d(client, f"cellbox-bench-run-{os.getpid()}-{i}", floor_runs=3)
            samples["docker_run_d"].append(elapsed)
            samples["floor_python_fresh"] += floor
    finally:
        client.close()
    project = project_folder(root / "editor-daemon")
    cellbox = [sys.executable, "-m", "cellbox"]
    subprocess.run([*cellbox, "daemon", "start", str(project)], check=True, capture_output=True)
    try:
        await editor_first_result(project, [*cellbox, "serve", "--connect"])  # the container comes up here
        for _ in range(runs):
            samples["editor_first_result_daemon"].append(
                await editor_first_result(project, [*cellbox, "serve", "--connect"]))
    finally:
        subprocess.run([*cellbox, "daemon", "stop", str(project)], capture_output=True)
    return samples


def reference_sandboxes(base: Path, count: int, blocks: int, lifecycle: bool) -> dict[str, list[float]]:
    """AG2's DockerCommandLineCodeExecutor: `count` executors created at once
    (one thread each), timed until all are up; then `blocks` python blocks in
    each, all at once; with `lifecycle`, one executor's restart and stop,
    timed. All are stopped afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    from autogen.coding import CodeBlock, DockerCommandLineCodeExecutor

    samples: dict[str, list[float]] = {"sandboxes_reference": [], "concurrency_reference": [],
                                        "reference_restart": [], "reference_stop": []}
    base.mkdir()
    with ThreadPoolExecutor(count) as pool:
        started = time.perf_counter()
        futures = [pool.submit(DockerCommandLineCodeExecutor, image=IMAGE, work_dir=base / f"{w:02d}")
                   for w in range(count)]
        made, failed = [], []
        for future in futures:
            try:
                made.append(future.result())
            except Exception as exc:  # the others are stopped below all the same
                failed.append(repr(exc))
        samples["sandboxes_reference"].append((time.perf_counter() - started) * 1000)
        try:
            assert not failed, f"{len(failed)} of {count} reference executors did not come up: {failed[:3]}"

            def run_blocks(w: int) -> int:
                result = made[w].execute_code_blocks(
                    [CodeBlock(language="python", code=f"print({w} * 100 + {b})") for b in range(blocks)])
                return result.exit_code

            started = time.perf_counter()
            assert list(pool.map(run_blocks, range(count))) == [0] * count
            samples["concurrency_reference"].append((time.perf_counter() - started) * 1000)
            if lifecycle:
                started = time.perf_counter()
                made[0].restart()
                samples["reference_restart"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                made.pop(0).stop()
                samples["reference_stop"].append((time.perf_counter() - started) * 1000)
        finally:
            list(pool.map(lambda executor: executor.stop(), made))
    return samples


async def sandboxes_figures(daemon: Daemon, root: Path, rounds: int, count: int = 20) -> dict[str, list[float]]:
    """20 sandboxes brought up at once: a first block (`sh true`) in each of
    20 fresh workspaces, all sent together to one daemon, timed until all are
    answered; against AG2's Docker executor creating 20 executors at once
    (see reference_sandboxes, which also gives the reference's figures for
    the 20x10 blocks and for restart and stop). Rounds interleaved."""
    samples: dict[str, list[float]] = {"sandboxes_cellbox": []}
    for r in range(rounds):
        folders = []
        for w in range(count):
            folder = root / f"many{r}-{w:02d}"
            folder.mkdir()
            folders.append(folder)
        started = time.perf_counter()
        answers = await asyncio.gather(*(daemon.command("cellbox.execute", {
            "workspace": str(folder), "blocks": [{"language": "sh", "code": "true"}]}) for folder in folders))
        samples["sandboxes_cellbox"].append((time.perf_counter() - started) * 1000)
        assert all(result["exitCode"] == 0 for _, result in answers), answers
        await asyncio.gather(*(daemon.command("cellbox.stop", {"workspace": str(folder)}) for folder in folders))
        for key, values in (await asyncio.to_thread(
                reference_sandboxes, root / f"many-reference{r}", count, 10, r == 0)).items():
            samples.setdefault(key, []).extend(values)
    return samples


REMOTE_DELAY_MS = 2.0
"""The remote engine's link: this much delay each way (twice that a round trip)."""


async def remote_figures(root: Path, runs: int, requests: dict[str, float]) -> dict[str, list[float]]:
    """Copy mode against a remote engine: a second dockerd that cannot see the
    workspace (tests/namespaced_engine.py, as in the copy-mode tests), reached
    over TCP through a link of REMOTE_DELAY_MS each way (latency_link.py).
    A warm `echo` block through cellbox (its daemon told the engine by
    DOCKER_HOST) against one `docker exec` (the SDK's exec_run) into the same
    container over the same link; beside them, the engine's `_ping` through
    the link and directly, which shows the round trip the link adds, and the
    same warm echo in copy mode on that engine without the link (its Unix
    socket), which shows what copy mode costs apart from the latency. Into
    `requests` go the engine API requests each block took (counted by the link)."""
    samples: dict[str, list[float]] = {key: [] for key in (
        "remote_warm_echo", "remote_docker_exec", "remote_ping_link", "remote_ping_direct",
        "remote_warm_echo_no_link")}
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: its tests' engine
    from tests.namespaced_engine import namespaced_dockerd

    main_client = docker.from_env()
    with contextlib.closing(main_client), namespaced_dockerd(main_client, IMAGE) as engine:
        link = subprocess.Popen([sys.executable, str(Path(__file__).with_name("latency_link.py")),
                                 engine.url.removeprefix("unix://"), str(REMOTE_DELAY_MS)],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert link.stdout is not None
            url = f"tcp://127.0.0.1:{int(link.stdout.readline())}"
            workspace, unlinked = project_folder(root / "remote"), project_folder(root / "remote-no-link")
            daemon, direct = Daemon(), Daemon()
            await daemon.start(workspace, env={**os.environ, "DOCKER_HOST": url})
            await direct.start(unlinked, env={**os.environ, "DOCKER_HOST": engine.url})
            delayed = docker.DockerClient(base_url=url, timeout=120)
            try:
                for i in range(3):  # the sandboxes come up, then are warm
                    await daemon.command("cellbox.execute", {"blocks": [{"language": "sh", "code": f"echo {i}"}]})
                    await direct.command("cellbox.execute", {"blocks": [{"language": "sh", "code": f"echo {i}"}]})
                (container,) = engine.client.containers.list(filters={"label": f"{LABEL_WORKSPACE}={workspace}"})
                sources = {mount.get("Source") for mount in container.attrs["Mounts"]}
                assert str(workspace) not in sources, f"not copy mode: the engine mounts {workspace}"
                seen = delayed.containers.get(container.id)

                def requests_so_far() -> int:
                    link.send_signal(signal.SIGUSR1)
                    return int(link.stdout.readline())

                counted = {"remote_warm_echo": 0, "remote_docker_exec": 0}
                for start in range(0, runs, 5):
                    n = min(5, runs - start)
                    before = requests_so_far()
                    samples["remote_warm_echo"] += await timed_executes(daemon, workspace, "sh", "echo {i}", n)
                    middle = requests_so_far()
                    for i in range(n):
                        started = time.perf_counter()
                        result = seen.exec_run(["sh", "-c", f"echo {i}"])
                        samples["remote_docker_exec"].append((time.perf_counter() - started) * 1000)
                        assert result.exit_code == 0 and result.output == f"{i}\n".encode(), result
                    counted["remote_warm_echo"] += middle - before
                    counted["remote_docker_exec"] += requests_so_far() - middle
                    samples["remote_warm_echo_no_link"] += await timed_executes(direct, unlinked, "sh", "echo {i}", n)
                    for key, client in (("remote_ping_link", delayed), ("remote_ping_direct", engine.client)):
                        for _ in range(n):
                            started = time.perf_counter()
                            client.ping()
                            samples[key].append((time.perf_counter() - started) * 1000)
                await daemon.command("cellbox.stop", {"workspace": str(workspace)})
                await direct.command("cellbox.stop", {"workspace": str(unlinked)})
                requests.update({"per_warm_echo": counted["remote_warm_echo"] / runs,
                                 "per_docker_exec": counted["remote_docker_exec"] / runs})
            finally:
                await daemon.stop()
                await direct.stop()
                delayed.close()
        finally:
            link.terminate()
            link.wait(10)
    return samples


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def concurrency(daemon: Daemon, root: Path, workspaces: int, blocks: int) -> dict[str, float]:
    folders = []
    for w in range(workspaces):
        folder = root / f"ws{w:02d}"
        folder.mkdir()
        folders.append(folder)
    peak = rss_mb(daemon.pid)
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_mb(daemon.pid))
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    started = time.perf_counter()
    requests = [
        daemon.command(
            "cellbox.execute",
            {"workspace": str(folder),
             "blocks": [{"language": "python", "code": f"print({w} * 100 + {b})"} for b in range(blocks)]},
        )
        for w, folder in enumerate(folders)
    ]
    answers = await asyncio.gather(*requests)
    wall = (time.perf_counter() - started) * 1000
    sampling = False
    await sampler
    correct = sum(
        1
        for w, (_, result) in enumerate(answers)
        for b, block in enumerate(result["blocks"])
        if block["exitCode"] == 0 and block["output"] == f"{w * 100 + b}\n"
    )
    return {"workspaces": workspaces, "blocks_each": blocks, "blocks_correct": correct,
            "blocks_total": workspaces * blocks, "wall_ms": round(wall, 1), "daemon_peak_rss_mb": round(peak, 1)}


SECTIONS = ("warm", "sessions", "cold", "restart", "environments", "agents", "mcp", "concurrency", "cli",
            "first_result", "sandboxes", "remote")
"""What --only may name; a full run (the only one whose results are kept) measures all."""


async def measure(only: frozenset[str], runs: int, root: Path, engine: docker.DockerClient) -> dict[str, dict]:
    workspace = root / "warm"
    workspace.mkdir()
    daemon = Daemon()
    await daemon.start(workspace)
    figures: dict[str, dict] = {}
    pooled: dict[str, list[float]] = {}  # figures two sections add samples to

    def keep(samples: dict[str, list[float]]) -> None:
        for key, values in samples.items():
            figures[key] = summary(values)

    try:
        # Warm up the sandbox (created here, then every run below is warm).
        await daemon.command("cellbox.execute", {"blocks": [{"language": "sh", "code": "true"}]})
        container = engine.containers.list(filters={"label": f"{LABEL_WORKSPACE}={workspace}"})[0]
        per_round = 5

        if "warm" in only:
            # Interleaved in rounds, so that the machine's noise (it is shared)
            # falls on the warm figures, the floor and the reference alike.
            samples: dict[str, list[float]] = {key: [] for key in (
                "warm_python", "warm_bash", "floor_python", "floor_sh", "reference_python", "reference_bash",
                "warm_python_pygls_client")}
            # The same python block through pygls' client too (jsonrpc_client.py
            # says why), in a workspace of its own: a second server on the
            # first workspace would share its sandbox through docker exec.
            other = root / "warm-pygls"
            other.mkdir()
            heavier = PyglsDaemon()
            await heavier.start(other)
            await timed_executes(heavier, other, "python", "print({i})", 10)  # up, and forking
            for start in range(0, runs, per_round):
                n = min(per_round, runs - start)
                samples["warm_python"] += await timed_executes(daemon, workspace, "python", "print({i})", n)
                samples["warm_python_pygls_client"] += await timed_executes(
                    heavier, other, "python", "print({i})", n)
                samples["warm_bash"] += await timed_executes(daemon, workspace, "bash", "echo {i}", n)
                floor = floor_inside(container, n)
                samples["floor_python"] += floor["python"]
                samples["floor_sh"] += floor["sh"]
                samples["reference_python"] += reference_exec(container, workspace, "python", "print({i})", n)
                samples["reference_bash"] += reference_exec(container, workspace, "bash", "echo {i}", n)
            await heavier.stop()
            keep(samples)

        if "sessions" in only:
            # Sessions: a warm block in a kernel the daemon drives, against
            # jupyter_client driving the same image's ipykernel directly; and a
            # session's start (cellbox.restart of the session: kill, then start)
            # against the kernel's own start-up.
            session_starts = 5
            await session_blocks(daemon, workspace, 3)  # starts the "bench" session
            session_samples: list[float] = []
            for start in range(0, runs, per_round):
                session_samples += await session_blocks(daemon, workspace, min(per_round, runs - start))
            figures["warm_session_block"] = summary(session_samples)
            floor = kernel_floor(container, runs, session_starts)
            figures["floor_kernel_roundtrip"] = summary(floor["roundtrip"])
            figures["floor_kernel_start"] = summary(floor["start"])
            session_restarts = []
            for _ in range(session_starts):
                elapsed, _ = await daemon.command("cellbox.restart", {"session": "bench"})
                session_restarts.append(elapsed)
            figures["session_start"] = summary(session_restarts)

        cold_runs = max(5, runs // 3)
        if "cold" in only:
            cold = []
            for i in range(cold_runs):
                fresh = root / f"cold{i:02d}"
                fresh.mkdir()
                elapsed, result = await daemon.command(
                    "cellbox.execute", {"workspace": str(fresh), "blocks": [{"language": "python", "code": "print(0)"}]}
                )
                assert result["output"] == "0\n", result
                cold.append(elapsed)
                await daemon.command("cellbox.stop", {"workspace": str(fresh)})
            figures["cold_first_execute"] = summary(cold)

        if "cold" in only or "restart" in only:
            bare_root = root / "bare"
            bare_root.mkdir()
            figures["bare_create_start"] = summary(await bare_create_start(bare_root, cold_runs))

        if "restart" in only:
            restarts, stops = [], []
            for i in range(cold_runs):
                elapsed, _ = await daemon.command("cellbox.restart", {})
                restarts.append(elapsed)
                # The plain `docker run -d` the restart target is stated against, interleaved.
                pooled.setdefault("docker_run_d", []).append(docker_run_d(engine, f"cellbox-bench-run-r{os.getpid()}-{i}")[0])
            for _ in range(cold_runs):
                await daemon.command("cellbox.execute", {"blocks": [{"language": "sh", "code": "true"}]})
                elapsed, _ = await daemon.command("cellbox.stop", {})
                stops.append(elapsed)
            figures["restart"] = summary(restarts)
            figures["stop"] = summary(stops)

        if "environments" in only:
            keep(await environment_figures(daemon, root, max(5, runs // 6)))
        if "agents" in only:
            keep(await asyncio.to_thread(agent_figures, root, max(10, runs // 2)))
        if "mcp" in only:
            keep(await mcp_figures(daemon, root, max(10, runs // 2)))
        if "concurrency" in only:
            figures["concurrency"] = await concurrency(daemon, root, workspaces=20, blocks=10)
        if "cli" in only:
            keep(command_line(root, max(10, runs // 2)))
        if "first_result" in only:
            first = await first_result_figures(root, max(5, runs // 3))
            pooled.setdefault("docker_run_d", []).extend(first.pop("docker_run_d"))
            keep(first)
        if "sandboxes" in only:
            keep(await sandboxes_figures(daemon, root, rounds=3))
        if "remote" in only:
            try:
                requests: dict[str, float] = {}
                keep(await remote_figures(root, runs, requests))
                figures["remote_api_requests"] = requests
            except Exception as exc:  # printed as not measured, with the reason, never as a figure
                figures["remote"] = {"not_measured": f"{type(exc).__name__}: {exc}"}
        keep(pooled)
    finally:
        await daemon.stop()
        # The list endpoint's labels, without inspecting each container: an
        # inspect of someone else's paused container hung here (Docker 20.10).
        for container in engine.api.containers(all=True, filters={"label": LABEL_WORKSPACE}):
            if (container.get("Labels") or {}).get(LABEL_WORKSPACE, "").startswith(str(root)):
                engine.api.remove_container(container["Id"], force=True)
    return figures


RATIOS = {
    "warm_python_over_python_floor": lambda m: m["warm_python"] / m["floor_python"],
    "reference_python_over_warm_python": lambda m: m["reference_python"] / m["warm_python"],
    "warm_python_pygls_client_over_python_floor": lambda m: m["warm_python_pygls_client"] / m["floor_python"],
    "warm_bash_minus_sh_floor_ms": lambda m: m["warm_bash"] - m["floor_sh"],
    "reference_bash_over_warm_bash": lambda m: m["reference_bash"] / m["warm_bash"],
    "cold_over_bare_create_start": lambda m: m["cold_first_execute"] / m["bare_create_start"],
    "cli_exec_over_python_process": lambda m: m["cli_exec_via_daemon"] / m["floor_python_process"],
    "cli_exec_over_docker_cli_exec": lambda m: m["cli_exec_via_daemon"] / m["docker_cli_exec"],
    "warm_session_over_kernel_roundtrip": lambda m: m["warm_session_block"] / m["floor_kernel_roundtrip"],
    "session_start_over_kernel_start": lambda m: m["session_start"] / m["floor_kernel_start"],
    "cold_env_over_cold_base": lambda m: m["cold_first_execute_env"] / m["cold_first_execute_base"],
    "env_rebuild_minus_by_hand_ms": lambda m: m["env_rebuild"] - m["env_rebuild_by_hand"],
    "ag2_reference_over_cellbox": lambda m: m["ag2_block_reference"] / m["ag2_block_cellbox"],
    "mcp_call_over_execute": lambda m: m["mcp_call"] / m["execute_same_block"],
    # Issue 17's rows.
    "editor_first_result_over_run_d_plus_floor":
        lambda m: m["editor_first_result_cold"] / (m["docker_run_d"] + m["floor_python_fresh"]),
    "sandboxes_cellbox_over_reference": lambda m: m["sandboxes_cellbox"] / m["sandboxes_reference"],
    "concurrency_cellbox_over_reference": lambda m: m["concurrency_wall"] / m["concurrency_reference"],
    "restart_over_docker_run_d": lambda m: m["restart"] / m["docker_run_d"],
    "restart_over_bare_create_start": lambda m: m["restart"] / m["bare_create_start"],
    "remote_echo_over_docker_exec": lambda m: m["remote_warm_echo"] / m["remote_docker_exec"],
    "remote_link_added_roundtrip_ms": lambda m: m["remote_ping_link"] - m["remote_ping_direct"],
    "reference_restart_over_restart": lambda m: m["reference_restart"] / m["restart"],
    "reference_stop_over_stop": lambda m: m["reference_stop"] / m["stop"],
}
"""Each from the medians; a ratio whose figures a partial run did not measure is left out."""

TARGETS = {
    "warm python < 0.4x python floor": lambda m, r, f: r["warm_python_over_python_floor"] < 0.4,
    "warm python >= 12x faster than exec reference": lambda m, r, f: r["reference_python_over_warm_python"] >= 12,
    "warm bash <= sh floor + 2 ms": lambda m, r, f: r["warm_bash_minus_sh_floor_ms"] <= 2,
    "cold first execute < 1.2x bare create+start": lambda m, r, f: r["cold_over_bare_create_start"] < 1.2,
    "restart < 1 s": lambda m, r, f: m["restart"] < 1000,
    "stop < 0.5 s": lambda m, r, f: m["stop"] < 500,
    "20x10 concurrent blocks all correct":
        lambda m, r, f: f["concurrency"]["blocks_correct"] == f["concurrency"]["blocks_total"],
    "daemon RSS < 150 MB under that load": lambda m, r, f: f["concurrency"]["daemon_peak_rss_mb"] < 150,
    "warm session block <= 3 ms": lambda m, r, f: m["warm_session_block"] <= 3,
    "warm session block <= 1.5x kernel round trip": lambda m, r, f: r["warm_session_over_kernel_roundtrip"] <= 1.5,
    "session start <= 1.3x kernel start-up": lambda m, r, f: r["session_start_over_kernel_start"] <= 1.3,
    "cold run on a cached environment <= 1.1x on the base image": lambda m, r, f: r["cold_env_over_cold_base"] <= 1.1,
    "environment rebuild <= docker build by hand + 2 s": lambda m, r, f: r["env_rebuild_minus_by_hand_ms"] <= 2000,
    "AG2 block via cellbox >= 4x faster than AG2's Docker executor":
        lambda m, r, f: r["ag2_reference_over_cellbox"] >= 4,
    "AG2 executor created <= 100 ms": lambda m, r, f: m["ag2_executor_create"] <= 100,
    "AG2 executor restart and stop <= 1 s": lambda m, r, f: max(m["ag2_restart"], m["ag2_stop"]) <= 1000,
    "MCP tools/call <= 1.5x cellbox.execute": lambda m, r, f: r["mcp_call_over_execute"] <= 1.5,
    "editor's first result (no container yet) <= 1.3x docker run -d + python floor":
        lambda m, r, f: r["editor_first_result_over_run_d_plus_floor"] <= 1.3,
    "editor's first result with the project's daemon running <= 100 ms":
        lambda m, r, f: m["editor_first_result_daemon"] <= 100,
    "20 sandboxes at once no slower than AG2's Docker executor (<= 1.0x)":
        lambda m, r, f: r["sandboxes_cellbox_over_reference"] <= 1.0,
    "restart <= 1.0x a plain docker run -d": lambda m, r, f: r["restart_over_docker_run_d"] <= 1.0,
    "copy mode warm echo <= 0.5x one docker exec to the same engine":
        lambda m, r, f: r["remote_echo_over_docker_exec"] <= 0.5,
}
"""Each is met or MISSED; one whose figures a partial run did not measure is not measured."""

ROWS = (
    # label, cellbox's figure, the reference's figures (summed), what the reference is, the ratio
    ("warm python block", "warm_python", ("reference_python",), "one docker exec (AG2's method)",
     "reference_python_over_warm_python"),
    ("  against the floor", "warm_python", ("floor_python",), "python3 -c in the container",
     "warm_python_over_python_floor"),
    ("  the same through pygls' LanguageClient", "warm_python_pygls_client", ("floor_python",),
     "python3 -c in the container", "warm_python_pygls_client_over_python_floor"),
    ("warm bash block", "warm_bash", ("reference_bash",), "one docker exec (AG2's method)",
     "reference_bash_over_warm_bash"),
    ("  against the floor", "warm_bash", ("floor_sh",), "sh -c in the container", "warm_bash_minus_sh_floor_ms"),
    ("restart", "restart", ("reference_restart",), "AG2 DockerCommandLineCodeExecutor.restart",
     "reference_restart_over_restart"),
    ("  against docker run -d", "restart", ("docker_run_d",), "plain docker run -d", "restart_over_docker_run_d"),
    ("stop", "stop", ("reference_stop",), "AG2 DockerCommandLineCodeExecutor.stop", "reference_stop_over_stop"),
    ("20 workspaces x 10 blocks at once", "concurrency_wall", ("concurrency_reference",),
     "20 AG2 executors, 10 blocks each, threads", "concurrency_cellbox_over_reference"),
    ("20 sandboxes brought up at once", "sandboxes_cellbox", ("sandboxes_reference",),
     "20 AG2 executors created, threads", "sandboxes_cellbox_over_reference"),
    ("editor start to first result, no container", "editor_first_result_cold",
     ("docker_run_d", "floor_python_fresh"), "docker run -d + python3 -c floor",
     "editor_first_result_over_run_d_plus_floor"),
    ("  with the project's daemon running", "editor_first_result_daemon", (), "target 100 ms", None),
    (f"copy mode (remote engine, {REMOTE_DELAY_MS:g} ms each way), warm echo", "remote_warm_echo",
     ("remote_docker_exec",), "one docker exec, same engine and link", "remote_echo_over_docker_exec"),
    ("  the same without the link (engine's Unix socket)", "remote_warm_echo_no_link", (), "", None),
    ("  the link's own round trip (_ping)", "remote_ping_link", ("remote_ping_direct",), "_ping without the link",
     "remote_link_added_roundtrip_ms"),
)
"""The issue's table: cellbox's figure beside the reference's, from the same run."""


def _maybe(compute, *args):
    """compute(*args), or None when a figure it needs was not measured."""
    try:
        return compute(*args)
    except KeyError:
        return None


async def main(runs: int, json_path: Path | None, only: frozenset[str]) -> int:
    engine = docker.from_env()
    root = Path(tempfile.mkdtemp(prefix="cellbox-bench-"))
    # The daemon's own folders for the bench's throw-away workspaces go with
    # them, not into the user's ~/.local/state (the daemons inherit this).
    os.environ["XDG_STATE_HOME"] = str(root / "state")
    os.environ["XDG_DATA_HOME"] = str(root / "data")  # the approvals of its workspaces' files
    # Its project daemons' sockets (the AG2 executor's) in a folder of its own, not the user's.
    os.environ["XDG_RUNTIME_DIR"] = str(root / "runtime")
    (root / "runtime").mkdir(mode=0o700)
    try:
        figures = await measure(only, runs, root, engine)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if "concurrency" in figures:
        figures["concurrency_wall"] = {"median_ms": figures["concurrency"]["wall_ms"], "p90_ms":
                                       figures["concurrency"]["wall_ms"], "n": 1}

    med = {name: f["median_ms"] for name, f in figures.items() if "median_ms" in f}
    ratios = {name: value for name, compute in RATIOS.items() if (value := _maybe(compute, med)) is not None}
    targets = {name: met for name, check in TARGETS.items()
               if (met := _maybe(check, med, ratios, figures)) is not None}
    rows = []
    for label, ours, theirs, what, ratio in ROWS:
        reference = sum(med[key] for key in theirs) if all(key in med for key in theirs) else None
        rows.append({"row": label, "cellbox_ms": med.get(ours), "reference": what,
                     "reference_ms": round(reference, 3) if theirs and reference is not None else None,
                     "ratio": ratios.get(ratio) if ratio else None, "ratio_name": ratio})
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "docker": engine.version().get("Version"), "image": IMAGE, "runs": runs,
                    "remote_link_delay_ms_each_way": REMOTE_DELAY_MS,
                    "sections": sorted(only)},
        "figures": figures,
        "rows": rows,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": targets,
    }
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    figures, ratios = report["figures"], report["ratios"]
    print(f"machine: {report['machine']}")
    print(f"{'figure':<28}{'median ms':>12}{'p90 ms':>12}{'n':>6}")
    for name, f in figures.items():
        if "median_ms" in f:
            print(f"{name:<28}{f['median_ms']:>12.2f}{f['p90_ms']:>12.2f}{f['n']:>6}")
        elif "not_measured" in f:
            print(f"{name:<28} not measured: {f['not_measured']}")
    conc = figures.get("concurrency")
    if conc:
        print(f"concurrency: {conc['workspaces']} workspaces x {conc['blocks_each']} blocks at once: "
              f"{conc['blocks_correct']}/{conc['blocks_total']} correct in {conc['wall_ms']:.0f} ms, "
              f"daemon peak RSS {conc['daemon_peak_rss_mb']:.1f} MB")
    if requests := figures.get("remote_api_requests"):
        print(f"copy mode: engine API requests per warm echo {requests['per_warm_echo']:.1f}, "
              f"per docker exec {requests['per_docker_exec']:.1f} (counted by the link)")
    print("issue 17's table (medians, same run; ratio as named after the reference):")
    print(f"  {'':<52}{'cellbox ms':>12}{'reference ms':>14}{'ratio':>9}  reference")
    for row in report["rows"]:
        def cell(value, width, digits=1):
            return f"{value:>{width}.{digits}f}" if value is not None else f"{'n/m':>{width}}"
        print(f"  {row['row']:<52}{cell(row['cellbox_ms'], 12)}{cell(row['reference_ms'], 14)}"
              f"{cell(row['ratio'], 9, 3)}  {row['reference']} [{row['ratio_name'] or 'no ratio'}]")
    print("ratios:")
    for name, value in ratios.items():
        print(f"  {name:<44}{value:>10.3f}")
    print("targets:")
    for name in TARGETS:
        met = report["targets"].get(name)
        print(f"  [{'not measured' if met is None else 'met' if met else 'MISSED'}] {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="warm runs per figure (at least 30)")
    parser.add_argument("--json", type=Path, default=None,
                        help="where the results go (default: bench/results.json, and only for a full run)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to measure, of: {','.join(SECTIONS)}")
    args = parser.parse_args()
    only = frozenset(part.strip() for part in args.only.split(",") if part.strip())
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    json_path = args.json
    if json_path is None and only == set(SECTIONS):
        json_path = Path(__file__).with_name("results.json")
    sys.exit(asyncio.run(main(max(30, args.runs), json_path, only)))
