"""`lab collect`: the hash table, and a bundle from a fake lab (no Docker)."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lab.engine.redaction import MARK, Redaction
from lab.engine.run import Result
from lab.errors import LabError
from lab.render.secrets import fingerprint, secret_values
from lab.spec.labspec import SpecRequest, resolve
from lab.store.labdir import RenderedLab, write_lab
from lab.support import collect as collect_mod
from lab.support.collect import (
    Bundle,
    collect,
    hash_table,
    log_files_cmd,
    read_no_links,
    split_tails,
    versions,
)
from lab.support.doctor.checks import judge
from lab.support.doctor.facts import Gathered, HostFacts, NodeFacts


def test_hash_table_shows_mismatch_without_values() -> None:
    table = hash_table({"gitlab": {"gitlab_shell": {"secret_token": "one"}},
                        "gitaly1": {"gitlab_shell": {"secret_token": "two"}}},
                       {"gitlab": "tok", "gitaly1": "tok"})
    row = table["gitlab_shell.secret_token"]
    assert row == {"gitaly1": fingerprint("two"), "gitlab": fingerprint("one")}
    assert table["gitlab.rb gitaly token"]["gitlab"] == table["gitlab.rb gitaly token"]["gitaly1"]


def test_bundle_refuses_to_write_a_leak(tmp_path: Path) -> None:
    b = Bundle(Redaction({"the-secret-value-1"}))
    b.add_raw("x.txt", "oops the-secret-value-1")
    with pytest.raises(LabError, match="refusing"):
        b.write(tmp_path / "b.tar.gz", "top")
    assert not (tmp_path / "b.tar.gz").exists()


class FakeStatus:
    def __init__(self, nodes: list[str]) -> None:
        self.nodes = [type("N", (), {"node": n, "state": "running"})() for n in nodes]

    def to_json(self) -> dict[str, Any]:
        return {"nodes": [{"node": n.node, "state": n.state} for n in self.nodes]}


class FakeLab:
    """A lab whose containers print every secret they know into their logs."""

    def __init__(self, rendered: RenderedLab, own: dict[str, Any]) -> None:
        self.rendered = rendered
        self.lab = rendered.lab
        self.name = rendered.lab.name
        self.path = rendered.path
        self.own = own  # the gitlab-secrets.json a node generated itself
        self.leak = " ".join(secret_values(rendered.secrets.to_json()) + secret_values(own))
        self.execs: list[tuple[str, list[str]]] = []
        self.status_calls = 0

    def exec(self, node: str, cmd: list[str], *, check: bool = True,
             timeout: float | None = None) -> Result:
        self.execs.append((node, cmd))
        if cmd == log_files_cmd():  # what `tail -v` prints for two files
            return Result(cmd, 0, f"==> /var/log/gitlab/gitaly/current <==\ngitaly log "
                          f"{self.leak}\n\n==> /var/log/gitlab/puma/current <==\npuma log\n", "")
        return Result(cmd, 0, f"run: gitaly: (pid 1) 5s {self.leak}\n", "")

    def logs(self, node: str, *, tail: int = 200, since: str | None = None) -> str:
        return f"container log of {node}: {self.leak}\n{self.named_hashes()}"

    def named_hashes(self) -> str:
        """Log lines with hashes that name things (a hashed repository path, an image id, a
        SHA-256 repository's commit id), each beside a real secret of the lab (64 and 128
        hex digits, the same shape)."""
        sec = self.rendered.secrets
        shell = sec.shared["gitlab_shell"]["secret_token"]
        return (f'{{"grpc.request.repoPath":"@hashed/{REPO[:2]}/{REPO[2:4]}/{REPO}.git",'
                f'"token":"{sec.gitaly_token}","secret":"{shell}"}}\n'
                f"image_id: sha256:{IMAGE} {sec.gitaly_token} {shell}\n"
                f"oldrev={COMMIT} newrev={sec.gitaly_token} {self.own_secret()}\n")

    def own_secret(self) -> str:
        return str(self.own.get("gitlab_shell", {}).get("secret_token", "d" * 64))

    def container(self, node: str) -> Any:
        return None

    def status(self) -> Any:
        self.status_calls += 1
        return FakeStatus([n.name for n in self.lab.nodes])


# sha256("1"): project 1's folder under GitLab's hashed storage; an image id; a commit.
REPO = "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
IMAGE = "0f4a3c2b1d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
COMMIT = "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"


def _all_text(bundle: Path) -> dict[str, str]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def _secret_values(lab_dir: Path, own: dict[str, Any]) -> list[str]:
    """Every secret of the lab, straight from its secrets store: tokens, the
    gitlab-secrets.json values (shared and each node's own) and private keys."""
    store = json.loads((lab_dir / ".lab" / "secrets.json").read_text())
    values = [store["gitaly_token"], store["admin_token"], *secret_values(store["shared"]),
              *secret_values(store["own"]), *secret_values(own),
              *(v for k, v in store["tls"].items() if k.endswith(".key")),
              store.get("praefect_token", ""), store.get("praefect_db_password", "")]
    return [v for v in values if len(v) >= 8]


def _leaks(files: dict[str, str], secrets: list[str]) -> list[str]:
    found = []
    for name, text in files.items():
        for value in secrets:
            parts = [value, *(ln for ln in value.splitlines() if len(ln) >= 16)]
            found += [f"{name} leaks {fingerprint(value)}" for part in parts if part in text]
    return found


def _fake_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, topology: str = "scaled",
                 prepare: Callable[[Path], None] | None = None
                 ) -> tuple[FakeLab, dict[str, str], list[str]]:
    monkeypatch.setattr(collect_mod, "versions", lambda host, image, notes: {"toolkit": "t"})
    lab = resolve(SpecRequest(topology=topology,
                              sets=("tls=true", "nodes.gitaly1.secrets=none")))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    if prepare is not None:
        prepare(rendered.path)
    own = {"gitlab_shell": {"secret_token": "b" * 128},
           "gitlab_rails": {"secret_key_base": "c" * 40 + "generated"}}
    fake = FakeLab(rendered, own)
    shared = rendered.secrets.shared
    gathered = Gathered(host=HostFacts(docker_version="x", lab_running=True),
                        nodes=[NodeFacts("gitlab", "running", None, "", True, "s:a", "s:a"),
                               NodeFacts("gitaly1", "running", None, "", True, "s:b", "s:b")],
                        secrets={"gitlab": shared, "gitaly1": own})
    out = collect(fake, tmp_path / "b.tar.gz",
                  doctor_result=(judge(lab.name, gathered, "gitlab"), gathered))
    files = _all_text(out)
    top = next(iter(files)).split("/")[0]
    assert all(k.startswith(f"{top}/") for k in files)
    return fake, {k.removeprefix(f"{top}/"): v for k, v in files.items()}, \
        _secret_values(tmp_path / "lab", own)


def test_bundle_from_a_fake_lab_leaks_nothing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake, files, secrets = _fake_bundle(tmp_path, monkeypatch)
    assert next(iter(files)) == "SUMMARY.md"
    assert len(secrets) > 8
    assert not _leaks(files, secrets)
    for node in ("gitlab", "gitaly1"):
        assert f"nodes/{node}/container.log" in files
        assert f"nodes/{node}/var-log-gitlab/gitaly/current" in files
        assert files[f"nodes/{node}/var-log-gitlab/puma/current"] == "puma log\n"
        assert f"nodes/{node}/gitlab-ctl-status.txt" in files
    # One exec per node for all its log files, and Docker asked for the status once.
    assert [n for n, cmd in fake.execs if cmd == log_files_cmd()] == ["gitlab", "gitaly1"]
    assert fake.status_calls == 1
    assert '"state": "running"' in files["status.json"]
    own = fake.own
    shared = fake.rendered.secrets.shared
    hashes = files["secret-hashes.md"]
    assert fingerprint(own["gitlab_shell"]["secret_token"]) in hashes
    assert fingerprint(shared["gitlab_shell"]["secret_token"]) in hashes
    assert "**NO**" in hashes
    assert "left out" in files["lab/nodes/gitaly1/ssl/gitaly1.key"]
    summary = files["SUMMARY.md"]
    assert "**FAIL** gitaly1" in summary


def test_bundle_keeps_hashes_that_name_things_and_drops_the_secrets_beside_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every 64-hex string used to go: @hashed/6b/86/[REDACTED].git, sha256:[REDACTED].
    fake, files, secrets = _fake_bundle(tmp_path, monkeypatch)
    log = files["nodes/gitaly1/container.log"]
    assert f"@hashed/6b/86/{REPO}.git" in log
    assert f"image_id: sha256:{IMAGE} " in log
    assert f"oldrev={COMMIT} " in log
    assert fake.rendered.secrets.gitaly_token not in log
    assert fake.own_secret() not in log  # one the lab did not make: by its shape
    assert log.count(MARK) >= 7
    assert not _leaks(files, secrets)


def test_a_deep_folder_a_container_made_is_walked_only_so_far(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # nodes/<node>/ is the container's /etc/gitlab: folders 1,000 deep there were a
    # RecursionError in rglob (files_below walks without recursion, tested with 1,100).
    from lab.spec.yamlfile import MAX_FOLDER_DEPTH

    def nest(lab_dir: Path) -> None:
        deep = lab_dir / "nodes" / "gitaly1"
        for _ in range(MAX_FOLDER_DEPTH + 8):
            deep = deep / "d"
        deep.mkdir(parents=True)
        (deep / "too-deep.txt").write_text("x\n")
        (lab_dir / "nodes" / "gitaly1" / "d" / "near.txt").write_text("y\n")

    _fake, files, secrets = _fake_bundle(tmp_path, monkeypatch, prepare=nest)
    assert "lab/nodes/gitaly1/d/near.txt" in files
    assert not [f for f in files if f.endswith("too-deep.txt")]
    assert not _leaks(files, secrets)


def test_bundle_keeps_certificates_readable(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake, files, secrets = _fake_bundle(tmp_path, monkeypatch)
    tls = fake.rendered.secrets.tls
    # A certificate is public: support needs its SAN and issuer; only keys are secret.
    assert files["lab/nodes/gitaly1/ssl/gitaly1.crt"] == tls["gitaly1.crt"]
    assert files["lab/nodes/gitlab/trusted-certs/lab-ca.crt"] == tls["ca.crt"]
    assert tls["gitaly1.crt"] in files["nodes/gitaly1/container.log"]
    assert MARK not in files["lab/nodes/gitaly1/ssl/gitaly1.crt"]
    assert not _leaks(files, secrets)


def test_leak_check_catches_a_secret_the_redaction_missed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The no-leak test is only as good as its list: drop one value from the
    # redaction and the same check must find it in the bundle.
    forgotten = "c" * 40 + "generated"
    real = collect_mod.lab_redaction

    def forgetful(*args: Any) -> Redaction:
        r = real(*args)
        r.secrets.discard(forgotten)
        return r

    monkeypatch.setattr(collect_mod, "lab_redaction", forgetful)
    _fake, files, secrets = _fake_bundle(tmp_path, monkeypatch)
    found = _leaks(files, secrets)
    assert found
    assert all(fingerprint(forgotten) in f for f in found)


def test_split_tails_keeps_each_files_lines() -> None:
    text = ("==> /var/log/gitlab/gitaly/current <==\na\n\nb\n\n"
            "==> /var/log/gitlab/puma/current <==\nc\n"
            "==> not/ours <==\n\n"
            "==> /var/log/gitlab/empty <==\n")
    assert split_tails(text) == {"gitaly/current": "a\n\nb\n",
                                 "puma/current": "c\n==> not/ours <==\n",
                                 "empty": ""}
    assert split_tails("") == {}


def test_versions_reuse_what_doctor_found(monkeypatch: pytest.MonkeyPatch) -> None:
    host = HostFacts(docker_version=None, docker_error="not reachable",
                     compose="docker compose 2.24.1")
    notes: list[str] = []
    data = versions(host, "gitlab-testlab/sim:1", notes)
    assert data["docker"] == "unavailable: not reachable"
    assert data["compose"] == "docker compose 2.24.1"
    assert data["image"] == "gitlab-testlab/sim:1"
    assert "image_id" not in data  # no Docker: not asked again
    assert notes == []


def test_split_tails_drops_a_header_that_climbs_out() -> None:
    # The container's root writes /var/log/gitlab: a file name or a line shaped like a
    # header must not name a bundle member outside the bundle's folder.
    text = ("==> /var/log/gitlab/gitaly/current <==\na\n"
            "==> /var/log/gitlab/../../../../tmp/evil <==\nb\n"
            "==> /var/log/gitlab/x//y <==\nc\n")
    tails = split_tails(text)
    assert list(tails) == ["gitaly/current"]
    assert "b\n" in tails["gitaly/current"]


def test_bundle_member_names_stay_in_its_folder(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = FakeLab.exec

    def exec_(self: FakeLab, node: str, cmd: list[str], *, check: bool = True,
              timeout: float | None = None) -> Result:
        if cmd == log_files_cmd():
            return Result(cmd, 0, "==> /var/log/gitlab/a <==\n"
                          "==> /var/log/gitlab/../../../../../tmp/evil <==\nx\n", "")
        return real(self, node, cmd, check=check, timeout=timeout)

    monkeypatch.setattr(FakeLab, "exec", exec_)
    _fake, files, _secrets = _fake_bundle(tmp_path, monkeypatch)
    assert not [f for f in files if ".." in f.split("/")]


def test_read_no_links_follows_no_link_anywhere_in_the_path(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "creds").write_text("host only")
    lab = tmp_path / "lab"
    (lab / "nodes" / "gitlab" / "real").mkdir(parents=True)
    (lab / "nodes" / "gitlab" / "real" / "creds").write_text("lab file")
    (lab / "nodes" / "gitlab" / "dir").symlink_to(host)
    (lab / "nodes" / "gitlab" / "file").symlink_to(host / "creds")
    assert read_no_links(lab, "nodes/gitlab/real/creds") == "lab file"
    for rel in ("nodes/gitlab/dir/creds", "nodes/gitlab/file"):
        with pytest.raises(OSError, match=r"symbolic links|Not a directory"):
            read_no_links(lab, rel)


def test_a_link_swapped_in_after_the_listing_is_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A container can replace a file of its /etc/gitlab by a link to a host file
    # between collect's is_symlink() check and its read: the read itself must refuse.
    host = tmp_path / "host-secret"
    host.write_text("HOST-ONLY-CONTENT\n")
    orig = _fake_bundle.__globals__["write_lab"]

    def planted(lab: Any, path: Path, **kw: Any) -> RenderedLab:
        rendered = orig(lab, path, **kw)
        (path / "nodes" / "gitaly1" / "planted.rb").symlink_to(host)
        # The check ran while planted.rb was still a file.
        monkeypatch.setattr(Path, "is_symlink", lambda self: False)
        return rendered

    monkeypatch.setitem(_fake_bundle.__globals__, "write_lab", planted)
    _fake, files, _secrets = _fake_bundle(tmp_path, monkeypatch)
    assert not [f for f, text in files.items() if "HOST-ONLY" in text]


def test_omnibus_config_password_stays_out_of_the_bundle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # omnibus_config is in the compose file (YAML-quoted) and manifest.json (JSON-escaped).
    monkeypatch.setattr(collect_mod, "versions", lambda host, image, notes: {"toolkit": "t"})
    spec = tmp_path / "acme.yaml"
    spec.write_text("name: acme\ntopology: scaled\nnodes:\n  gitlab:\n    omnibus_config: |\n"
                    "      gitlab_rails['db_password'] = \"dq-pass-0001\"\n"
                    "      gitlab_rails['smtp_password'] = 'sq-pass-0002'\n")
    lab = resolve(SpecRequest(file=spec))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    gathered = Gathered(host=HostFacts(docker_version="x", lab_running=True),
                        nodes=[], secrets={})
    out = collect(FakeLab(rendered, {}), tmp_path / "b.tar.gz",
                  doctor_result=(judge(lab.name, gathered, "gitlab"), gathered))
    files = _all_text(out)
    assert any("GITLAB_OMNIBUS_CONFIG" in t for t in files.values())
    assert not [f for f, t in files.items() if "pass-0001" in t or "pass-0002" in t]


def test_cluster_bundle_has_praefect_s_state_and_leaks_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake, files, secrets = _fake_bundle(tmp_path, monkeypatch, "cluster")
    for sub in ("sql-ping", "dial-nodes", "dataloss", "sql-migrate-status"):
        report = files[f"nodes/praefect/praefect-{sub}.txt"]
        assert report.startswith(f"$ praefect {sub}   (exit 0)")
    assert ("praefect", ["/opt/gitlab/embedded/bin/chpst", "-u", "git:git",
                         "/opt/gitlab/embedded/bin/praefect", "-config",
                         "/var/opt/gitlab/praefect/config.toml", "dataloss"]) in fake.execs
    assert "nodes/praefect-db/container.log" in files
    assert "praefect internal token" in files["secret-hashes.md"]
    assert _leaks(files, secrets) == []
