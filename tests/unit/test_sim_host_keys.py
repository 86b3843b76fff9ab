"""The sim wrapper's ssh host keys: the files the Omnibus wrapper makes on first start."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from labsim.node.supervisor import SSH_KEY_KINDS, ssh_host_keys

NAMES = {f"ssh_host_{k}_key{pub}" for k in SSH_KEY_KINDS for pub in ("", ".pub")}


def _pool(tmp_path: Path, sets: int) -> Path:
    pool = tmp_path / "pool"
    for i in range(sets):
        for name in NAMES:
            (pool / str(i)).mkdir(parents=True, exist_ok=True)
            (pool / str(i) / name).write_text(f"set {i} {name}\n")
    return pool


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_takes_one_made_set_whole(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    ssh_host_keys(str(etc), str(_pool(tmp_path, 3)))
    assert {p.name for p in etc.iterdir()} == NAMES
    sets = {p.read_text().split()[1] for p in etc.iterdir()}
    assert len(sets) == 1  # a key and its .pub from the same set
    for kind in SSH_KEY_KINDS:
        assert _mode(etc / f"ssh_host_{kind}_key") == 0o600
    assert capsys.readouterr().out.splitlines() == [
        f"Generating ssh_host_{k}_key..." for k in SSH_KEY_KINDS]


def test_keys_already_there_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ssh_host_rsa_key").write_text("the node's own\n")
    ssh_host_keys(str(etc), str(_pool(tmp_path, 1)))
    assert (etc / "ssh_host_rsa_key").read_text() == "the node's own\n"
    assert "Generating ssh_host_rsa_key..." not in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl on this machine")
def test_without_made_sets_openssl_makes_them(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    ssh_host_keys(str(etc), str(tmp_path / "no-pool"))
    assert {p.name for p in etc.iterdir()} == NAMES
    assert (etc / "ssh_host_ed25519_key").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (etc / "ssh_host_rsa_key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert _mode(etc / "ssh_host_ecdsa_key") == 0o600
