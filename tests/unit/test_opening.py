"""What `initialize` sets up, read from its raw message before pygls is
loaded (lsp/opening.py): the same workspaces and settings the handler finds,
and nothing at all from a message that is not a well-formed initialize."""

from __future__ import annotations

import json

from cellbox.lsp.opening import settings_of_initialize


def message(body: object) -> bytes:
    data = json.dumps(body).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


def initialize(params: dict) -> bytes:
    return message({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})


def test_the_workspace_folders_come_first_then_the_root(tmp_path) -> None:
    a, b, root = tmp_path / "a", tmp_path / "b", tmp_path / "root"
    for folder in (a, b, root):
        folder.mkdir()
    found = settings_of_initialize(initialize({
        "workspaceFolders": [{"uri": a.as_uri(), "name": "a"}, {"uri": b.as_uri(), "name": "b"}],
        "rootUri": root.as_uri(),
    }))
    assert found is not None and found.workspaces == [a, b]
    only_root = settings_of_initialize(initialize({"rootPath": str(root)}))
    assert only_root is not None and only_root.workspaces == [root]


def test_the_clients_settings_are_validated_and_the_workspaces_kept_apart(tmp_path) -> None:
    found = settings_of_initialize(initialize({
        "rootUri": tmp_path.as_uri(),
        "initializationOptions": {"timeout": 5, "workspaceSettings": {"network": "bridge"}},
    }))
    assert found is not None and found.error is None
    assert found.overrides == {"timeout": 5}
    assert found.workspace_settings == {"network": "bridge"}


def test_invalid_options_are_set_aside_with_their_reason(tmp_path) -> None:
    found = settings_of_initialize(initialize({"rootUri": tmp_path.as_uri(), "initializationOptions": {"timeout": "x"}}))
    assert found is not None and found.overrides == {} and found.error is not None
    assert "timeout" in str(found.error)


def test_anything_but_an_initialize_gives_nothing(tmp_path) -> None:
    assert settings_of_initialize(message({"jsonrpc": "2.0", "method": "initialized", "params": {}})) is None
    assert settings_of_initialize(message({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": []})) is None
    assert settings_of_initialize(b"Content-Length: 3\r\n\r\n{x}") is None
    assert settings_of_initialize(b"") is None
    missing = settings_of_initialize(initialize({"rootUri": (tmp_path / "gone").as_uri()}))
    assert missing is not None and missing.workspaces == []  # not a folder: ignored, as the handler does
