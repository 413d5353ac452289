"""Unit tests of the pool of sandboxes and of one client's view of it: which
workspace a request or a document lands in, and the bookkeeping of runs that
can be cancelled (no engine: the fake one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_engine import FakeEngine

from cellbox.errors import InvalidParams
from cellbox.sandbox.pool import ClientView, SandboxPool


@pytest.fixture
def view(tmp_path: Path) -> ClientView:
    return ClientView(SandboxPool(FakeEngine()))


def test_one_sandbox_per_workspace_shared_by_every_client(tmp_path: Path) -> None:
    pool = SandboxPool(FakeEngine())
    first, second = ClientView(pool), ClientView(pool)
    assert first.sandbox(str(tmp_path)) is second.sandbox(tmp_path.as_uri())


def test_a_document_runs_in_the_innermost_workspace_that_holds_it(view: ClientView, tmp_path: Path) -> None:
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    view.default_workspaces = [outer, inner]
    (inner / "notes.md").touch()
    (tmp_path / "elsewhere.md").touch()
    assert view.sandbox_for_file(inner / "notes.md").workspace == inner
    assert view.sandbox_for_file(tmp_path / "elsewhere.md").workspace == outer  # the first, for a stray file


def test_a_request_without_a_workspace_needs_one_from_initialize(view: ClientView) -> None:
    with pytest.raises(InvalidParams, match="names no workspace"):
        view.sandbox(None)


async def test_a_named_run_can_be_cancelled_while_it_lasts_and_its_name_reused_after(view: ClientView) -> None:
    with view.cancellable("run-1") as cancelled:
        assert view.pool.active_runs == 1
        with pytest.raises(InvalidParams, match="already going"), view.cancellable("run-1"):
            pass
        assert view.cancel("run-1") is True and cancelled.is_set()
    assert view.pool.active_runs == 0
    assert view.cancel("run-1") is False  # over: nothing to cancel
    with view.cancellable("run-1"):
        pass


async def test_a_client_that_hangs_up_cancels_its_runs_named_or_not(view: ClientView) -> None:
    with view.cancellable(None) as unnamed, view.cancellable("named") as named:
        view.cancel_all()
        assert unnamed.is_set() and named.is_set()
