"""Which engine cellbox talks to: what the docker CLI would pick, and errors
that name where it looked."""

from __future__ import annotations

import hashlib
import json

import pytest

from cellbox.engine.location import locate_engine
from cellbox.errors import EngineUnavailable


def write_context(config_dir, name: str, host: str) -> None:
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}}))


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    return tmp_path


def test_docker_host_wins(docker_config, monkeypatch):
    write_context(docker_config, "far", "tcp://far:2375")
    monkeypatch.setenv("DOCKER_CONTEXT", "far")
    monkeypatch.setenv("DOCKER_HOST", "tcp://near:2375")
    assert locate_engine().describe() == "tcp://near:2375 (from DOCKER_HOST)"


def test_docker_context_names_the_context_even_without_a_config_file(docker_config, monkeypatch):
    write_context(docker_config, "far", "ssh://me@far")
    monkeypatch.setenv("DOCKER_CONTEXT", "far")
    found = locate_engine()
    assert (found.url, found.tls, found.context) == ("ssh://me@far", False, "far")


def test_the_current_context_of_the_config_file(docker_config):
    write_context(docker_config, "far", "tcp://far:2375")
    (docker_config / "config.json").write_text(json.dumps({"currentContext": "far"}))
    found = locate_engine()
    assert found.url == "tcp://far:2375"
    assert "current Docker context 'far'" in found.describe()


def test_no_context_is_the_local_socket(docker_config):
    assert locate_engine().url is None
    assert "unix:///var/run/docker.sock" in locate_engine().describe()


def test_a_missing_context_is_a_clear_error(docker_config, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "nowhere")
    with pytest.raises(EngineUnavailable) as error:
        locate_engine()
    assert "'nowhere'" in str(error.value) and "docker context ls" in str(error.value)


def test_an_unreachable_engine_is_told_in_words_not_as_python_values():
    import errno

    from cellbox.engine.answers import plain_reason

    # What docker-py raises for a missing socket: requests' tuple in its text.
    inner = ConnectionError("Connection aborted.", FileNotFoundError(errno.ENOENT, "No such file or directory"))
    try:
        try:
            raise inner
        except ConnectionError:
            raise RuntimeError("Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, "
                               "'No such file or directory'))") from None
    except RuntimeError as outer:
        outer.__context__ = inner
        assert plain_reason(outer) == "no socket or file there"
    assert plain_reason(RuntimeError("Error while fetching server API version: [Errno 111] Connection refused")) \
        == "Connection refused"
