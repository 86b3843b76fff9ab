"""``LabFolder``: a lab folder read back is the lab that was written, each secret is stored
once, and the token a node holds has one answer (``token_of``)."""

from __future__ import annotations

from pathlib import Path

from lab.model.topology import Lab
from lab.render.gitlab_rb import token_of
from lab.spec.labspec import SpecRequest, resolve
from lab.store.lab_folder import LabFolder
from lab.store.labdir import write_lab
from lab.store.layout import SECRETS_STORE, SPEC_FILE, STATE_DIR

LAB_TOKEN = "lab-token-0123456789"
NODE_TOKEN = "node-token-9876543210"


def tokened() -> Lab:
    return resolve(SpecRequest(topology="scaled", flavor="sim",
                               sets=(f"gitaly_token={LAB_TOKEN}",
                                     f"nodes.gitaly1.gitaly_token={NODE_TOKEN}")))


def test_each_token_is_stored_once_and_the_lab_reads_back_whole(tmp_path: Path) -> None:
    lab = tokened()
    rendered = write_lab(lab, tmp_path / "lab", image="sim:test")
    folder = LabFolder(rendered.path)
    folder.save_spec(lab)
    state_files = {p.name: p.read_text() for p in (rendered.path / STATE_DIR).iterdir()}
    for token in (LAB_TOKEN, NODE_TOKEN):
        holders = [name for name, text in state_files.items() if token in text]
        assert holders == [Path(SECRETS_STORE).name], holders
        assert token not in folder.file(SPEC_FILE).read_text()
    assert folder.lab() == lab  # the saved spec plus the secrets: the same lab
    sec = folder.secrets()
    assert sec is not None
    assert token_of(lab, sec, lab.node("gitaly1")) == NODE_TOKEN
    assert token_of(lab, sec, lab.app) == LAB_TOKEN


def test_a_lab_without_spec_tokens_reads_back_without_them(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", flavor="sim"))
    rendered = write_lab(lab, tmp_path / "lab", image="sim:test")
    LabFolder(rendered.path).save_spec(lab)
    back = LabFolder(rendered.path).lab()
    assert back == lab
    assert back.gitaly_token is None
    assert all(n.gitaly_token is None for n in back.nodes)


def test_the_written_back_secrets_are_never_read_through_a_link(tmp_path: Path) -> None:
    # Every section of the node's file is copied into the one rendered over it: read
    # through a link a container swapped in (after the render checked the folder), a host
    # file's JSON would land in the node's /etc/gitlab.
    from lab.store.labdir import _with_written_back

    host = tmp_path / "host.json"
    host.write_text('{"auths": {"registry": {"auth": "host-credential"}}}')
    node = tmp_path / "lab" / "nodes" / "gitaly1"
    node.mkdir(parents=True)
    (node / "gitlab-secrets.json").symlink_to(host)
    rendered = '{"gitlab_shell": {"secret_token": "x"}}'
    out = _with_written_back(tmp_path / "lab", "nodes/gitaly1/gitlab-secrets.json", rendered)
    assert "host-credential" not in out
    (node / "gitlab-secrets.json").unlink()
    (node / "gitlab-secrets.json").write_text(host.read_text())  # a real file: merged
    out = _with_written_back(tmp_path / "lab", "nodes/gitaly1/gitlab-secrets.json", rendered)
    assert "host-credential" in out
    assert '"secret_token": "x"' in out
