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
