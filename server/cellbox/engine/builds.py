"""Image builds and image bookkeeping on the Docker engine, for DockerBackend
(blocking calls; docker.py runs them in its threads).

A build goes through the engine's own build API with a generated context (a
Dockerfile at its root), intermediate containers always removed. Its JSON
stream gives the steps ("Step 3/5 : RUN ...") and log lines, reported as they
come. When a step fails, the images the build made for its earlier steps are
removed too (not those it took from the cache: other builds own them), so a
failed build leaves nothing behind.
"""

from __future__ import annotations

import collections
import io
import re
from collections.abc import Callable

import docker
import docker.errors

from cellbox.engine.answers import reason_of
from cellbox.engine.protocol import BuildFailed, BuildStep, ImageInfo

STEP = re.compile(r"^(?:Step|STEP) (\d+)/(\d+) ?: (.*)$")
"""Docker's "Step 3/5 : RUN ..." and Podman's (buildah's) "STEP 3/5: RUN ..."."""
LAYER = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
RUNNING = re.compile(r"^ ---> Running in [0-9a-f]+$")
TAIL_LINES = 25
"""How much of the failing step's output its error shows."""


def build(
    client: docker.DockerClient, context: bytes, tag: str, network: str,
    on_step: Callable[[BuildStep], None], on_line: Callable[[str], None],
) -> str:
    made: list[str] = []
    """Images this build made (a step that ran, not one from the cache), oldest first."""
    step: BuildStep | None = None
    step_output: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    ran = False
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True, forcerm=True, pull=False,
            network_mode=network, decode=True,
        )
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise _failed(step, str(detail.get("message") or chunk.get("error")), step_output)
            for line in str(chunk.get("stream") or "").splitlines():
                if match := STEP.match(line):
                    step = BuildStep(int(match.group(1)), int(match.group(2)), match.group(3))
                    step_output.clear()
                    on_step(step)
                elif RUNNING.match(line):
                    ran = True
                elif (match := LAYER.match(line)) and ran:
                    made.append(match.group(1))
                    ran = False
                elif not line.startswith((" ---> ", "Removing intermediate container ")):
                    step_output.append(line)
                on_line(line)
        return str(client.images.get(tag).id)
    except BuildFailed:
        _remove_all(client, made)
        raise
    except docker.errors.APIError as exc:
        _remove_all(client, made)
        raise _failed(step, reason_of(exc), step_output) from None
    except BaseException:
        _remove_all(client, made)
        raise


def _failed(step: BuildStep | None, why: str, output: collections.deque[str]) -> BuildFailed:
    where = f"step {step.number}/{step.total} ({step.instruction})" if step else "its start"
    tail = "\n".join(line for line in output if line.strip())
    shown = f"\n--- the step's last output ---\n{tail}" if tail else ""
    return BuildFailed(f"The environment's build failed at {where}: {why}{shown}")


def _remove_all(client: docker.DockerClient, images: list[str]) -> None:
    for image in reversed(images):
        try:
            client.images.remove(image, noprune=False)
        except docker.errors.APIError:
            pass


def image_id(client: docker.DockerClient, name: str) -> str | None:
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.NotFound:
        return None


def images(client: docker.DockerClient, label: str) -> list[ImageInfo]:
    found = []
    for image in client.images.list(filters={"label": label}):
        found.append(ImageInfo(
            str(image.id), tuple(image.tags), int(image.attrs.get("Size") or 0), dict(image.labels or {}),
            str(image.attrs.get("Created") or ""),
        ))
    return found


def images_in_use(client: docker.DockerClient) -> set[str]:
    return {str(c.get("ImageID")) for c in client.api.containers(all=True) if c.get("ImageID")}


def remove_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.remove(image, noprune=False)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # a container uses it
            return False
        raise
    return True
