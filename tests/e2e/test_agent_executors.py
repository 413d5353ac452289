"""Drop-in executors for agent frameworks (issue 16): AG2's CodeExecutor,
with DockerCommandLineCodeExecutor's constructor; real daemon, real engine."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

pytest.importorskip("autogen.coding", reason="cellbox[ag2] is part of the test extra")

from autogen.coding import CodeBlock, MarkdownCodeExtractor  # noqa: E402
from autogen.coding.base import CodeExecutor, CommandLineCodeResult  # noqa: E402

from cellbox.integrations.ag2 import CellboxCodeExecutor  # noqa: E402
from tests.conftest import TEST_IMAGE, containers_of  # noqa: E402


def test_it_is_an_ag2_code_executor_that_runs_blocks_in_order(tmp_path, engine):
    work = tmp_path / "agent"
    with CellboxCodeExecutor(image=TEST_IMAGE, work_dir=work, timeout=10) as executor:
        assert isinstance(executor, CodeExecutor)
        assert isinstance(executor.code_extractor, MarkdownCodeExtractor)
        result = executor.execute_code_blocks([
            CodeBlock(language="python", code="open('made.txt', 'w').write('by the agent')\nprint('one')"),
            CodeBlock(language="bash", code="cat made.txt; echo; exit 3"),
            CodeBlock(language="python", code="print('never')"),
        ])
        assert isinstance(result, CommandLineCodeResult)
        assert (result.exit_code, result.output) == (3, "one\nby the agent\n")
        assert result.code_file is not None
        assert (work / "made.txt").read_text() == "by the agent"
        # The seed's behaviours: a timeout is exit 124; a block only saved says so.
        slow = executor.execute_code_blocks([CodeBlock(language="sh", code="sleep 30")])
        assert slow.exit_code == 124
        saved = executor.execute_code_blocks([CodeBlock(language="javascript", code="console.log(1)")])
        assert saved.exit_code == 0 and "saved" in saved.output.lower()
        assert containers_of(engine, work.resolve())
    # Leaving the context stops (and removes) the sandbox.
    assert containers_of(engine, work.resolve()) == []


def test_the_constructor_takes_the_seeds_parameters_and_checks_them(tmp_path, engine):
    with pytest.raises(ValueError, match="Timeout must be greater than or equal to 1"):
        CellboxCodeExecutor(timeout=0, work_dir=tmp_path / "w")
    name = f"cellbox-agent-test-{time.time_ns()}"
    started = time.perf_counter()
    executor = CellboxCodeExecutor(
        image=TEST_IMAGE, container_name=name, work_dir=tmp_path / "named", execution_policies={"python": False},
    )
    created_ms = (time.perf_counter() - started) * 1000
    try:
        result = executor.execute_code_blocks([CodeBlock(language="python", code="print(1)")])
        assert result.exit_code == 0 and "saved" in result.output.lower()  # python only saved, as asked
        shell = executor.execute_code_blocks([CodeBlock(language="sh", code="echo up")])
        assert shell.output == "up\n"
        assert engine.containers.get(name).status == "running"
        executor.restart()
        assert executor.execute_code_blocks([CodeBlock(language="sh", code="echo again")]).output == "again\n"
    finally:
        executor.stop()
    print(f"\nexecutor created in {created_ms:.1f} ms")
    assert containers_of(engine, (tmp_path / "named").resolve()) == []


def test_with_the_projects_daemon_the_agent_shares_its_container(make_workspace, engine, runtime_dir):
    workspace = make_workspace("shared")
    cli = [sys.executable, "-m", "cellbox"]
    subprocess.run([*cli, "daemon", "start", str(workspace)], check=True, capture_output=True)
    try:
        marked = subprocess.run([*cli, "exec", "-L", "sh", "-c", "echo editor > /tmp/mark"], cwd=workspace,
                                capture_output=True, text=True)
        assert marked.returncode == 0, marked.stderr
        executor = CellboxCodeExecutor(image=TEST_IMAGE, work_dir=workspace, stop_container=False)
        try:
            seen = executor.execute_code_blocks([CodeBlock(language="sh", code="cat /tmp/mark")])
            assert seen.output == "editor\n"
        finally:
            executor.stop()
        assert len(containers_of(engine, workspace)) == 1  # stop_container=False left it running
    finally:
        subprocess.run([*cli, "stop"], cwd=workspace, capture_output=True)
        subprocess.run([*cli, "daemon", "stop", str(workspace)], capture_output=True)


async def test_the_autogen_executor_runs_cancels_and_serialises(tmp_path, engine):
    pytest.importorskip("autogen_core", reason="cellbox[autogen] is part of the test extra")
    import asyncio

    from autogen_core import CancellationToken, ComponentModel
    from autogen_core.code_executor import CodeBlock as AutoGenBlock
    from autogen_core.code_executor import CodeExecutor as AutoGenExecutor

    from cellbox.integrations.autogen import CellboxCodeExecutor as AutoGenCellbox
    from tests.e2e.test_execution import surviving

    work = tmp_path / "autogen"
    executor = AutoGenCellbox(image=TEST_IMAGE, work_dir=work, timeout=20)
    assert isinstance(executor, AutoGenExecutor)
    # A component: its config round-trips, and loading it makes the same executor.
    dumped = executor.dump_component()
    assert isinstance(dumped, ComponentModel) and dumped.provider == "cellbox.integrations.autogen.CellboxCodeExecutor"
    assert dumped.config["image"] == TEST_IMAGE and dumped.config["timeout"] == 20
    assert isinstance(AutoGenCellbox.load_component(dumped), AutoGenCellbox)
    async with executor:
        result = await executor.execute_code_blocks(
            [AutoGenBlock(code="print('hi')", language="python"), AutoGenBlock(code="exit 4", language="sh")],
            CancellationToken(),
        )
        assert (result.exit_code, result.output) == (4, "hi\n") and result.code_file
        token = CancellationToken()
        running = asyncio.ensure_future(
            executor.execute_code_blocks([AutoGenBlock(code="sleep 382", language="sh")], token)
        )
        for _ in range(100):
            if any("sleep 382" in p for p in surviving(engine, work.resolve(), "sleep 382")):
                break
            await asyncio.sleep(0.1)
        token.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        for _ in range(50):
            if not surviving(engine, work.resolve(), "sleep 382"):
                break
            await asyncio.sleep(0.1)
        assert surviving(engine, work.resolve(), "sleep 382") == []
        await executor.restart()
        again = await executor.execute_code_blocks([AutoGenBlock(code="echo back", language="sh")], CancellationToken())
        assert again.output == "back\n"
    assert containers_of(engine, work.resolve()) == []  # stop() stopped (and removed) it


# ------------------------------------------------------------ the upstream suites' behaviours
# Expected values and messages as AG2's and autogen-ext's own Docker executors give them.


def test_ag2_the_upstream_behaviours(tmp_path):
    from autogen.code_utils import TIMEOUT_MSG

    with pytest.raises(FileNotFoundError):
        CellboxCodeExecutor(image=TEST_IMAGE, work_dir=tmp_path / "missing" / "deeper")
    work = tmp_path / "upstream"
    with CellboxCodeExecutor(image=TEST_IMAGE, work_dir=work, timeout=2) as executor:
        ok = executor.execute_code_blocks([CodeBlock(language="python", code="print('hello world!')")])
        assert (ok.exit_code, ok.output) == (0, "hello world!\n")
        shell = executor.execute_code_blocks([CodeBlock(language="sh", code="echo hello world!")])
        assert (shell.exit_code, shell.output) == (0, "hello world!\n")
        failed = executor.execute_code_blocks([CodeBlock(language="python", code="raise ValueError('boom')")])
        assert failed.exit_code == 1 and "ValueError: boom" in failed.output
        slow = executor.execute_code_blocks([CodeBlock(language="python", code="import time\ntime.sleep(10)")])
        assert slow.exit_code == 124 and TIMEOUT_MSG in slow.output
        named = executor.execute_code_blocks([CodeBlock(language="python", code="# filename: test.py\nprint('named')")])
        assert (named.exit_code, named.output, named.code_file) == (0, "named\n", str((work / "test.py").resolve()))
        assert (work / "test.py").read_text() == "# filename: test.py\nprint('named')"
        outside = executor.execute_code_blocks([CodeBlock(language="python", code="# filename: /tmp/x.py\nprint(1)")])
        assert (outside.exit_code, outside.output) == (1, "Filename is not in the workspace")
        unknown = executor.execute_code_blocks([CodeBlock(language="ruby", code="puts 1")])
        assert unknown.exit_code == 1 and unknown.output.startswith("Unsupported language ruby")
    with CellboxCodeExecutor(image=TEST_IMAGE, work_dir=work, execution_policies={"python": False}) as saving:
        saved = saving.execute_code_blocks([CodeBlock(language="python", code="print('never printed')")])
        assert saved.exit_code == 0 and saved.output.startswith("Code saved to ")
        assert "never printed\n" not in saved.output.replace("print('never printed')", "")


async def test_autogen_the_upstream_behaviours(tmp_path):
    pytest.importorskip("autogen_core", reason="cellbox[autogen] is part of the test extra")
    from autogen_core import CancellationToken
    from autogen_core.code_executor import CodeBlock as AutoGenBlock

    from cellbox.integrations.autogen import CellboxCodeExecutor as AutoGenCellbox

    with pytest.raises(ValueError, match="Timeout must be greater than or equal to 1"):
        AutoGenCellbox(timeout=0, work_dir=tmp_path / "w")
    work = tmp_path / "made" / "on" / "demand"
    executor = AutoGenCellbox(image=TEST_IMAGE, work_dir=work, timeout=2)
    assert work.is_dir()  # made at once, parents too, as autogen-ext's executor does
    with pytest.raises(ValueError, match="No code blocks"):
        async with executor:
            await executor.execute_code_blocks([], CancellationToken())
    async with AutoGenCellbox(image=TEST_IMAGE, work_dir=work, timeout=2) as executor:
        token = CancellationToken()
        slow = await executor.execute_code_blocks([AutoGenBlock(code="sleep 10", language="sh")], token)
        assert slow.exit_code == 124 and "Timeout" in slow.output
        named = await executor.execute_code_blocks(
            [AutoGenBlock(code="# filename: test.py\nprint('named')", language="python")], token
        )
        assert (named.output, named.code_file) == ("named\n", str((work / "test.py").resolve()))
        outside = await executor.execute_code_blocks(
            [AutoGenBlock(code="# filename: ../x.py\nprint(1)", language="python")], token
        )
        assert (outside.exit_code, outside.output) == (1, "Filename is not in the workspace")
