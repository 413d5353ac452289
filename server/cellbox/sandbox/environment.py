"""A workspace's declared environment (the `[environment]` table): the image
its sandbox starts from, built once from the base image with the declared
packages, and reused while nothing it depends on changes.

The image is `cellbox-env:<hash>`, where the hash covers the base image's id,
the declaration, and the content of the files it names (the requirements
file, a wheelhouse folder). Those files travel in the build context, so the
build works the same on a remote engine or Podman. They are read from the
workspace through safe_files (no link leads out, no FIFO is opened), and only
when the declaration was trusted: a workspace file's environment needs the
user's approval (settings/schema.loosens), since building runs its commands
as root, with the network unless it says `network = "none"`.

The sandbox then starts from that image with its usual hardening. A changed
declaration is a new tag, so a new container spec: the next run replaces the
container (runs are serialised, so never one mid-run).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import shlex
import stat
import tarfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

from cellbox import safe_files
from cellbox.engine.protocol import BuildStep, Engine
from cellbox.errors import ConfigError, SandboxFailed
from cellbox.sandbox.request import ProgressFactory
from cellbox.settings.schema import Environment

log = logging.getLogger(__name__)

REPOSITORY = "cellbox-env"
LABEL_IMAGE = "org.cellbox.image"
"""Also on the sandbox image scripts/build-image makes ("sandbox"); "environment" here."""
LABEL_ENVIRONMENT = "org.cellbox.environment"
"""The environment's hash, on each image built here: prune and status find them by it."""
LABEL_WORKSPACE = "org.cellbox.environment.workspace"
"""The workspace the image was first built for (shown by `cellbox env status`)."""
FORMAT = "1"
"""Part of the hash: a change to how the Dockerfile is written rebuilds every environment."""
CONTEXT = "cellbox-env"
"""The folder of the build context (and of the image, under /tmp) with the files the declaration names."""
MOST_BYTES = 1 << 30
MOST_FILES = 10_000


class EnvironmentBuildFailed(SandboxFailed):
    """The environment's image could not be built; the message says where and why."""


@attrs.frozen
class Plan:
    """What to build: the tag, and the build context (a Dockerfile at its root)."""

    tag: str
    digest: str
    network: str
    """The build's network: "default" or "none"."""
    dockerfile: str
    files: dict[str, bytes]
    """Context paths (under CONTEXT/) and their bytes."""

    def context(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in {"Dockerfile": self.dockerfile.encode(), **self.files}.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()


def read_inputs(workspace: Path, environment: Environment) -> dict[str, bytes]:
    """The files the declaration names, by their path in the build context.
    Blocking; ConfigError, in the user's words, for one that is missing or refused."""
    files: dict[str, bytes] = {}
    if environment.requirements:
        try:
            data = safe_files.read_regular(workspace, environment.requirements, MOST_BYTES)
        except safe_files.RefusedFile as exc:
            raise ConfigError(f"[environment] requirements: {exc}") from None
        if data is None:
            raise ConfigError(
                f"[environment] requirements = {environment.requirements!r}: there is no such file in {workspace}"
            )
        files[f"{CONTEXT}/requirements.txt"] = data
    if environment.find_links and not environment.find_links.startswith(("http://", "https://")):
        files.update(_wheelhouse(workspace, environment.find_links))
    return files


def _wheelhouse(workspace: Path, rel: str) -> dict[str, bytes]:
    """The regular files at the top of wheelhouse folder `rel` (links and
    other kinds are skipped, never followed)."""
    found: dict[str, bytes] = {}
    total = 0
    try:
        with safe_files.folder(workspace, rel) as fd:
            names = sorted(os.listdir(fd))
            for name in names:
                try:
                    file = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=fd)
                except OSError:
                    continue  # a link, or gone
                try:
                    info = os.fstat(file)
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    total += info.st_size
                    if total > MOST_BYTES or len(found) >= MOST_FILES:
                        raise ConfigError(
                            f"[environment] find_links = {rel!r} holds more than {MOST_BYTES >> 20} MiB or "
                            f"{MOST_FILES} files: serve it by URL instead"
                        )
                    with os.fdopen(os.dup(file), "rb") as reader:
                        found[f"{CONTEXT}/wheels/{name}"] = reader.read(info.st_size)
                finally:
                    os.close(file)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"[environment] find_links = {rel!r}: there is no such folder in {workspace}") from None
    except safe_files.RefusedFile as exc:
        raise ConfigError(f"[environment] find_links: {exc}") from None
    return found


def plan(environment: Environment, base_id: str, files: dict[str, bytes], workspace: Path) -> Plan:
    """The build of `environment` on the base image `base_id`, with `files` (read_inputs)."""
    described = json.dumps({
        "format": FORMAT, "base": base_id, "environment": attrs.asdict(environment),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }, sort_keys=True)
    digest = hashlib.sha256(described.encode()).hexdigest()
    dockerfile = _dockerfile(environment, base_id, digest, files, workspace)
    return Plan(f"{REPOSITORY}:{digest[:16]}", digest, environment.network, dockerfile, files)


def _dockerfile(environment: Environment, base_id: str, digest: str, files: dict[str, bytes], workspace: Path) -> str:
    lines = [f"FROM {base_id}", "USER root"]
    if files:
        lines.append(f"COPY {CONTEXT} /tmp/{CONTEXT}")
    if environment.system:
        names = " ".join(shlex.quote(name) for name in environment.system)
        lines.append(
            "RUN if command -v apt-get >/dev/null; then apt-get update -qq"
            f" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {names}"
            " && rm -rf /var/lib/apt/lists/*;"
            f" elif command -v apk >/dev/null; then apk add --no-cache {names};"
            " else echo 'cellbox: the base image has neither apt-get nor apk: system packages cannot be installed' >&2;"
            " exit 1; fi"
        )
    pip = _pip_arguments(environment, files)
    if pip:
        # PEP 668 images (Debian's Python) refuse a system-wide install
        # without this; an older pip ignores the variable.
        lines.append(
            "RUN PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore"
            f" python3 -m pip install --no-cache-dir --progress-bar off {' '.join(pip)}"
        )
    lines += [f"RUN {command}" for command in environment.setup]
    # Last, so that the steps above are cached across declarations that share them.
    lines.append(
        f"LABEL {LABEL_IMAGE}=environment {LABEL_ENVIRONMENT}={digest} {LABEL_WORKSPACE}={json.dumps(str(workspace))}"
    )
    return "\n".join(lines) + "\n"


def _pip_arguments(environment: Environment, files: dict[str, bytes]) -> list[str]:
    wanted = [shlex.quote(package) for package in environment.packages]
    if f"{CONTEXT}/requirements.txt" in files:
        wanted += ["-r", f"/tmp/{CONTEXT}/requirements.txt"]
    if not wanted:
        return []
    options = []
    if environment.index_url:
        options += ["--index-url", shlex.quote(environment.index_url)]
    if environment.find_links:
        if environment.find_links.startswith(("http://", "https://")):
            options += ["--find-links", shlex.quote(environment.find_links)]
        else:
            options += ["--find-links", f"/tmp/{CONTEXT}/wheels"]
            if environment.network == "none" and not environment.index_url:
                options.append("--no-index")  # offline: the wheelhouse is all there is
    return options + wanted


_PIP_INSTALL = re.compile(r"\bpip3?\s+install\s+([^\n;&|#]+)")
_OFFLINE = ("Failed to establish a new connection", "Temporary failure in name resolution", "Network is unreachable",
            "No matching distribution found", "Could not find a version that satisfies")


def offline_pip_note(code: str, output: str, network: str) -> str:
    """For a block whose `pip install` failed for want of a network: why, and
    how to declare the packages instead; "" for any other failure."""
    if network != "none" or not any(sign in output for sign in _OFFLINE):
        return ""
    wanted = []
    for match in _PIP_INSTALL.finditer(code):
        wanted += [word.strip("'\"") for word in match.group(1).split() if not word.startswith("-")]
    if not wanted:
        return ""
    declared = ", ".join(json.dumps(word) for word in wanted)
    return (
        '\ncellbox: pip cannot download packages here: the sandbox has no network (network = "none"). '
        "Declare them instead, and they are built into the sandbox's image once, offline afterwards:\n"
        f"    [environment]\n    packages = [{declared}]\n"
        "in cellbox.toml (see the README's Environments), or allow a network for the workspace "
        '(network = "bridge"): then what pip installs in a block stays for the next blocks.\n'
    )


StepReport = Callable[[str], None]
"""Told "step 3/5: RUN pip install ..." as a build goes."""


class Environments:
    """One daemon's view of environment images: which tag a declaration
    builds to (cached while its inputs' stat is unchanged, so a warm run asks
    the engine nothing) and the builds themselves, one at a time per tag."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._known: dict[tuple[str, str], str] = {}
        """(base image, the declaration and its files' stat) -> the tag it built to."""

    def forget(self) -> None:
        """Look at the engine again next time (a restart: the base image may have been rebuilt)."""
        self._known.clear()

    async def image_for(
        self, workspace: Path, environment: Environment, base_image: str, progress: ProgressFactory,
        pull_base: Callable[[], Awaitable[None]], log_path: Path | None = None,
    ) -> str:
        """The environment image to start the sandbox from, built now (under
        `progress`) if the engine has none for this content; `pull_base` gets
        the base image when the engine lacks it. EnvironmentBuildFailed when
        it cannot be built, ConfigError when a file it names is wrong."""
        marks = await asyncio.to_thread(_stat_key, workspace, environment)
        key = (base_image, repr(environment) + marks)
        if (known := self._known.get(key)) is not None:
            return known
        base_id = await self._engine.image_id(base_image)
        if base_id is None:
            await pull_base()
            base_id = await self._engine.image_id(base_image)
            if base_id is None:
                raise EnvironmentBuildFailed(f"The environment's base image {base_image!r} is not on the engine")
        files = await asyncio.to_thread(read_inputs, workspace, environment)
        planned = plan(environment, base_id, files, workspace)
        if await self._engine.image_id(planned.tag) is None:
            async with progress(f"Building the environment ({planned.tag})") as reporter:
                await self.build(planned, reporter or (lambda message: None), log_path)
        else:
            log.info("environment %s: cached", planned.tag)
        self._known[key] = planned.tag
        return planned.tag

    async def build(self, planned: Plan, report: StepReport, log_path: Path | None) -> None:
        loop = asyncio.get_running_loop()
        lines: list[str] = []
        started = time.monotonic()

        def on_step(step: BuildStep) -> None:
            message = f"building environment (step {step.number}/{step.total}): {step.instruction[:80]}"
            loop.call_soon_threadsafe(report, message)

        try:
            await self._engine.build_image(planned.context(), planned.tag, planned.network, on_step, lines.append)
        except SandboxFailed as exc:
            _save_log(log_path, lines)
            where = f"\nThe whole build log: {log_path}" if log_path is not None else ""
            raise EnvironmentBuildFailed(f"{exc}{where}") from None
        finally:
            _save_log(log_path, lines)
        took = time.monotonic() - started
        log.info("environment %s: built in %.1f s", planned.tag, took)
        # The last word of the progress: where the whole log is, for the user to open.
        report(f"built {planned.tag} in {took:.1f} s" + (f"; its log: {log_path}" if log_path else ""))


def _stat_key(workspace: Path, environment: Environment) -> str:
    """What tells, without reading them, that the files a declaration names are unchanged."""
    marks = []
    for rel in (environment.requirements, environment.find_links):
        if not rel or rel.startswith(("http://", "https://")):
            continue
        try:
            info = safe_files.lstat_beneath(workspace, rel)
            marks.append(f"{rel}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}" if info else f"{rel}:-")
            if info is not None and stat.S_ISDIR(info.st_mode):
                with safe_files.folder(workspace, rel) as fd:
                    for entry in sorted(os.scandir(fd), key=lambda e: e.name):
                        found = entry.stat(follow_symlinks=False)
                        marks.append(f"{entry.name}:{found.st_ino}:{found.st_size}:{found.st_mtime_ns}")
        except (OSError, safe_files.RefusedFile):
            marks.append(f"{rel}:?:{time.monotonic()}")  # never cached: read_inputs says what is wrong
    return "|".join(marks)


def _save_log(path: Path | None, lines: list[str]) -> None:
    if path is None:
        return
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        log.warning("could not save the environment's build log at %s: %s", path, exc)


# ------------------------------------------------------- what is cached

RECORD = "environment.json"
"""In a workspace's state folder: the environment image it uses now, and the workspace's path."""


def record(state_root: Path, workspace: Path, tag: str) -> None:
    """Note that `workspace` uses `tag` now (prune keeps it). Blocking."""
    path = state_root / RECORD
    data = json.dumps({"workspace": str(workspace), "image": tag})
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == data:
            return
        path.write_text(data, encoding="utf-8")
    except OSError as exc:
        log.warning("could not note the environment in use at %s: %s", path, exc)


def in_use_by_workspaces(workspaces_root: Path) -> dict[str, str]:
    """Per workspace known to this user (its state folder says so), the environment
    image it uses now, when the workspace still exists. Blocking."""
    found = {}
    for record_path in sorted(workspaces_root.glob(f"*/{RECORD}")):
        try:
            noted = json.loads(record_path.read_text(encoding="utf-8"))
            workspace, tag = str(noted["workspace"]), str(noted["image"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if Path(workspace).is_dir():
            found[workspace] = tag
    return found


@attrs.frozen
class CachedEnvironment:
    """One environment image on the engine, for `cellbox env status`."""

    tag: str
    id: str
    size: int
    workspace: str
    """The workspace it was first built for."""
    created: str
    current: bool
    """Whether a workspace known here uses it now."""
    in_container: bool
    """Whether a container (running or not) is made from it."""


async def cached(engine: Engine, workspaces_root: Path) -> list[CachedEnvironment]:
    current = set((await asyncio.to_thread(in_use_by_workspaces, workspaces_root)).values())
    used = await engine.images_in_use()
    found = []
    for image in await engine.images(f"{LABEL_IMAGE}=environment"):
        tags = [tag for tag in image.tags if tag.startswith(f"{REPOSITORY}:")] or list(image.tags) or [image.id[:19]]
        found.append(CachedEnvironment(
            tags[0], image.id, image.size, image.labels.get(LABEL_WORKSPACE, ""), image.created,
            any(tag in current for tag in image.tags), image.id in used,
        ))
    return sorted(found, key=lambda e: (e.workspace, e.created))


async def prune(engine: Engine, workspaces_root: Path) -> list[CachedEnvironment]:
    """Remove the environment images nothing uses: no container is made from
    them, and no workspace known here uses them now. Images built for a
    workspace this user does not know (another user's, on a shared engine)
    are left alone unless that workspace is gone. Only cellbox's environment
    images are ever touched (by their label). The ones removed."""
    known = await asyncio.to_thread(in_use_by_workspaces, workspaces_root)
    removed = []
    for environment in await cached(engine, workspaces_root):
        if environment.current or environment.in_container:
            continue
        if environment.workspace not in known and Path(environment.workspace or "/").is_dir():
            continue  # not ours to judge
        if await engine.remove_image(environment.id):
            removed.append(environment)
    return removed
