"""What one pull left out, and the note the block's output ends with.

A pull copies back at most copy_size_limit bytes (Budget); what it skipped,
the symlinks it kept out or removed, and the paths it could not write are
counted (PullReport) and told to the user in a few lines.
"""

from __future__ import annotations

import attrs

SIZE_LIMIT_KEY = "copy_size_limit"


class Budget:
    """Bytes a single pull may still copy back."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.skipped: list[str] = []

    def take(self, size: int, rel: str) -> bool:
        if size > self.left:
            self.skipped.append(rel)
            return False
        self.left -= size
        return True


@attrs.define
class PullReport:
    """What one pull left out, for the note the block's output ends with."""

    budget: Budget
    links: set[str] = attrs.Factory(set)
    """Symlinks this pull wrote."""
    made_outside: list[str] = attrs.Factory(list)
    """Symlinks the run made that lead outside the workspace: not copied back."""
    removed: list[str] = attrs.Factory(list)
    """Symlinks that were here before the run and lead outside it since: removed."""
    failed: list[str] = attrs.Factory(list)
    """Paths refused or that could not be written (the log says why)."""

    def note(self, size_limit: int) -> str:
        lines = []
        if self.budget.skipped:
            lines.append(
                f"cellbox: {len(self.budget.skipped)} file(s) made by the run were not copied back to the "
                f"workspace ({SIZE_LIMIT_KEY} is {mb(size_limit)}): {_some(self.budget.skipped)}"
            )
        if self.made_outside:
            lines.append(
                f"cellbox: {len(self.made_outside)} symlink(s) made by the run point outside the workspace "
                f"and were not copied back: {_some(self.made_outside)}"
            )
        if self.removed:
            lines.append(
                f"cellbox: {len(self.removed)} symlink(s) in the workspace pointed outside it after the run "
                f"and were removed: {_some(self.removed)}"
            )
        if self.failed:
            lines.append(
                f"cellbox: {len(self.failed)} path(s) made by the run could not be copied back "
                f"(the daemon's log says why): {_some(self.failed)}"
            )
        return "".join(f"\n{line}\n" for line in lines)


def _some(paths: list[str]) -> str:
    shown = ", ".join(sorted(paths)[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"
