"""Which command lines the entry point starts without click (main.py): only
the plain `serve` an editor runs; every other goes to the click program,
which alone checks and explains options."""

from __future__ import annotations

import pytest

from cellbox.main import serve_arguments


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve"], {"connect": False, "eager": False, "log_level": "INFO"}),
        (["serve", "--connect"], {"connect": True, "eager": False, "log_level": "INFO"}),
        (["serve", "--log-level", "warning"], {"connect": False, "eager": False, "log_level": "WARNING"}),
        (["serve", "--eager", "--log-level=DEBUG"], {"connect": False, "eager": True, "log_level": "DEBUG"}),
    ],
)
def test_an_editors_serve_starts_without_click(monkeypatch, args, expected) -> None:
    monkeypatch.delenv("CELLBOX_IDLE_TIMEOUT", raising=False)
    assert serve_arguments(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--help"],
        ["serve", "--log-level"],  # no value: click says so
        ["serve", "--log-level", "LOUD"],
        ["serve", "--idle-timeout", "5", "--connect"],
        ["serve", "extra"],
        ["run", "notes.md"],
        ["--version"],
        [],  # bare `cellbox` serves too, through the program
    ],
)
def test_anything_else_goes_to_the_click_program(monkeypatch, args) -> None:
    monkeypatch.delenv("CELLBOX_IDLE_TIMEOUT", raising=False)
    assert serve_arguments(args) is None


def test_an_idle_timeout_from_the_environment_is_checked_by_the_program(monkeypatch) -> None:
    monkeypatch.setenv("CELLBOX_IDLE_TIMEOUT", "-1")
    assert serve_arguments(["serve", "--connect"]) is None


def test_shell_completion_is_the_programs(monkeypatch) -> None:
    monkeypatch.setenv("_CELLBOX_COMPLETE", "bash_complete")
    assert serve_arguments(["serve"]) is None
