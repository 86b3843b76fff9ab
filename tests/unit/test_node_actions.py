"""What applying a state does to each node: nothing / reconfigure / restart / recreate, and why."""

from __future__ import annotations

import json

from lab.lifecycle.node_actions import Action, NodeActions, apply_actions
from lab.omnibus.release import Version

V19 = Version.parse("19.3.0")
V15 = Version.parse("15.9.8")
SERVICE: dict[str, object] = {"image": "sim:1", "ports": ["80"], "environment": {"A": "1"}}


def secrets(shell: str, **extra: object) -> str:
    return json.dumps({"gitlab_shell": {"secret_token": shell}, **extra})


def files(gitaly_rb: str = "g", app_rb: str = "a", gitaly_shell: str = "s",
          **more: str) -> dict[str, str]:
    out = {"docker-compose.yml": "x", "nodes/gitaly1/gitlab.rb": gitaly_rb,
           "nodes/gitaly1/gitlab-secrets.json": secrets(gitaly_shell),
           "nodes/gitlab/gitlab.rb": app_rb, "nodes/gitlab/gitlab-secrets.json": secrets("s")}
    out.update({k.replace("__", "/"): v for k, v in more.items()})
    return out


SERVICES: dict[str, dict[str, object]] = {"gitlab": SERVICE, "gitaly1": SERVICE}


def actions_of(old: dict[str, str], new: dict[str, str], *, version: Version = V19,
         new_services: dict[str, dict[str, object]] | None = None) -> NodeActions:
    return apply_actions(SERVICES, new_services or SERVICES, old, new, version=version,
                      gitaly_nodes={"gitaly1"}, app_nodes={"gitlab"})


def actions(p: NodeActions) -> dict[str, Action]:
    return {n.node: n.action for n in p.nodes}


def test_nothing_changed_is_nothing() -> None:
    p = actions_of(files(), files())
    assert actions(p) == {"gitlab": Action.NOTHING, "gitaly1": Action.NOTHING}
    assert p.changed == []
    assert p.describe() == []


def test_gitlab_rb_change_is_a_reconfigure_of_that_node_only() -> None:
    p = actions_of(files(), files(gitaly_rb="g2"))
    assert actions(p) == {"gitlab": Action.NOTHING, "gitaly1": Action.RECONFIGURE}
    assert p.changed == ["gitaly1"]
    assert p.describe() == ["gitaly1: reconfigure (changed: gitlab.rb)"]


def test_compose_change_is_a_recreate_naming_the_keys() -> None:
    moved: dict[str, object] = {**SERVICE, "ports": ["80", "9999"]}
    p = actions_of(files(), files(gitaly_rb="g2"),
                   new_services={"gitlab": SERVICE, "gitaly1": moved})
    assert actions(p)["gitaly1"] == Action.RECREATE
    assert "ports" in p.nodes[1].why
    assert not p.nodes[1].anew  # Compose recreates it, mounts and all


def test_changed_mounts_create_the_node_anew() -> None:
    # A node installed from source instead: its home folder and a tmpfs, not /etc/gitlab.
    omnibus: dict[str, object] = {**SERVICE, "volumes": ["./nodes/gitaly1:/etc/gitlab"]}
    source: dict[str, object] = {**SERVICE, "volumes": [
        "./nodes/gitaly1/home/git:/home/git", {"type": "tmpfs", "target": "/etc/gitlab"}]}
    for old, new in ((omnibus, source), (source, omnibus)):
        p = apply_actions({"gitlab": SERVICE, "gitaly1": old},
                          {"gitlab": SERVICE, "gitaly1": new}, files(), files(),
                          version=V19, gitaly_nodes={"gitaly1"}, app_nodes={"gitlab"})
        assert actions(p)["gitaly1"] == Action.RECREATE
        assert p.nodes[1].anew
        assert not p.nodes[0].anew


def test_tls_files_restart_the_node() -> None:
    p = actions_of(files(), files(**{"nodes__gitaly1__ssl__gitaly1_crt": "pem"}))
    assert actions(p)["gitaly1"] == Action.RESTART
    assert "ssl/gitaly1_crt" in p.nodes[1].why
    removed_ca = actions_of(files(**{"nodes__gitlab__trusted__ca_crt": "pem"}), files())
    assert actions(removed_ca)["gitlab"] == Action.RESTART


def test_a_restart_reconfigures_first_only_when_reconfigure_reads_a_changed_file() -> None:
    # A new certificate and key: reconfigure would change nothing (on Omnibus, a whole Chef
    # run), the restart alone makes Gitaly read them.
    cert = actions_of(files(), files(**{"nodes__gitaly1__ssl__gitaly1.crt": "pem"}))
    assert [(a.action, a.reconfigure) for a in cert.nodes if a.node == "gitaly1"] == \
        [(Action.RESTART, False)]
    # A trusted CA is linked into the store by reconfigure; gitlab.rb is applied by it.
    ca = actions_of(files(**{"nodes__gitlab__trusted-certs__ca.crt": "pem"}), files())
    assert [(a.action, a.reconfigure) for a in ca.nodes if a.node == "gitlab"] == \
        [(Action.RESTART, True)]
    both = actions_of(files(), files(gitaly_rb="g2", **{"nodes__gitaly1__ssl__gitaly1.crt": "p"}))
    assert [(a.action, a.reconfigure) for a in both.nodes if a.node == "gitaly1"] == \
        [(Action.RESTART, True)]
    shell = actions_of(files(), files(gitaly_shell="other"), version=V15)
    assert [(a.action, a.reconfigure) for a in shell.nodes if a.node == "gitaly1"] == \
        [(Action.RESTART, True)]


def test_shell_secret_on_a_gitaly_node_before_16_8_needs_a_restart() -> None:
    assert actions(actions_of(files(), files(gitaly_shell="other"), version=V15))["gitaly1"] \
        == Action.RESTART
    assert actions(actions_of(files(), files(gitaly_shell="other"), version=Version.parse("16.8.0"))
                   )["gitaly1"] == Action.RECONFIGURE
    # Other sections of the file: reconfigure in any release.
    other = files()
    other["nodes/gitaly1/gitlab-secrets.json"] = secrets("s", registry={"x": "y"})
    assert actions(actions_of(files(), other, version=V15))["gitaly1"] == Action.RECONFIGURE


def test_new_and_removed_nodes() -> None:
    p = apply_actions({"gitlab": SERVICE, "old": SERVICE}, {"gitlab": SERVICE, "new": SERVICE},
                   files(), files(), version=V19)
    assert actions(p) == {"gitlab": Action.NOTHING, "new": Action.RECREATE,
                          "old": Action.REMOVE}
    assert p.changed == ["new"]
    assert p.names(Action.REMOVE) == ["old"]
