"""The real Pulumi engine, our Python language host and the SDK's dynamic-provider shim, working together."""

from __future__ import annotations

from pathlib import Path

from tests.pulumi_support import PulumiProject

MARKER_PROVIDER = '''
from pathlib import Path

from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult


class MarkerProvider(ResourceProvider):
    """Writes a file; the smallest resource that has a real side effect to check."""

    def create(self, props):
        Path(props["path"]).write_text(props["text"])
        return CreateResult(id_=props["path"], outs={"path": props["path"], "text": props["text"]})

    def diff(self, id, olds, news):
        changed = [k for k in ("path", "text") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "path"])

    def update(self, id, olds, news):
        Path(id).write_text(news["text"])
        return UpdateResult(outs={"path": id, "text": news["text"]})

    def delete(self, id, props):
        Path(id).unlink(missing_ok=True)


class Marker(Resource):
    def __init__(self, name, path, text, opts=None):
        super().__init__(MarkerProvider(), name, {"path": path, "text": text}, opts)
'''

PROGRAM = """
import pulumi
from marker import Marker

config = pulumi.Config()
marker = Marker("marker", config.require("path"), config.require("text"))
pulumi.export("path", marker.id)
pulumi.export("token", config.require_secret("token"))
"""


def test_preview_up_noop_update_destroy(tmp_path: Path) -> None:
    target = tmp_path / "marker.txt"
    project = PulumiProject.create(tmp_path / "project", PROGRAM, files={"marker.py": MARKER_PROVIDER})
    project.config_set("path", str(target))
    project.config_set("text", "hello")
    project.config_set("token", "s3cret-token-value", secret=True)

    preview = project.run("preview", "--diff")
    assert "+ 2 to create" in preview.stdout
    assert not target.exists(), "preview must not create anything"

    up = project.run("up", "--yes")
    assert "+ 2 created" in up.stdout
    assert target.read_text() == "hello"
    assert project.outputs() == {"path": str(target), "token": "s3cret-token-value"}

    again = project.run("preview", "--expect-no-changes")
    assert "2 unchanged" in again.stdout

    project.config_set("text", "bye")
    changed = project.run("up", "--yes")
    assert "~ 1 updated" in changed.stdout
    assert target.read_text() == "bye"

    assert "s3cret-token-value" not in project.state_text(), "secrets must be encrypted in the state"

    down = project.run("destroy", "--yes")
    assert "- 2 deleted" in down.stdout
    assert not target.exists()


def test_program_error_fails_the_update_with_the_message(tmp_path: Path) -> None:
    project = PulumiProject.create(tmp_path / "project", 'raise ValueError("stack config is missing key fleet")\n')
    result = project.run("up", "--yes", check=False)
    assert result.returncode != 0
    assert "stack config is missing key fleet" in result.stdout + result.stderr
