"""What an executor's constructor arguments (DockerCommandLineCodeExecutor's,
in AG2 and AutoGen alike) mean to cellbox: the settings of its connection
to the LSP server (initializationOptions, the client's own, so trusted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellbox.languages import DEFAULT_EXECUTION_POLICIES


def executor_settings(
    image: str, container_name: str | None, timeout: int, bind_dir: Path | str | None, auto_remove: bool,
    stop_container: bool, execution_policies: dict[str, bool] | None,
) -> dict[str, Any]:
    """The settings, checked as the seed checks them (ValueError)."""
    if timeout < 1:
        raise ValueError("Timeout must be greater than or equal to 1.")
    return {
        "image": image, "timeout": timeout, "autoRemove": auto_remove, "stopContainer": stop_container,
        "executionPolicies": {**DEFAULT_EXECUTION_POLICIES, **(execution_policies or {})},
        **({"containerName": container_name} if container_name else {}),
        **({"bindDir": str(Path(bind_dir).resolve())} if bind_dir is not None else {}),
    }
