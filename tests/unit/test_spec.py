"""Specs: built-in topologies, files, --set overrides, and every bad input's exact message."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.model.topology import Role, SecretsPolicy
from lab.spec.labspec import SpecRequest, resolve
from lab.spec.versions import DEFAULT_VERSION, REFERENCE_VERSIONS, Version, dialect_for


def spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_scaled_is_the_guides_example() -> None:
    lab = resolve(SpecRequest(topology="scaled"))
    assert [n.name for n in lab.nodes] == ["gitlab", "gitaly1"]
    assert lab.app.roles == (Role.APP,)
    assert [s.name for s in lab.node("gitaly1").storages] == ["default", "storage1"]
    assert str(lab.version) == DEFAULT_VERSION
    assert lab.node("gitaly1").gitaly_address == "tcp://gitaly1:8075"


def test_sharded_and_single() -> None:
    sharded = resolve(SpecRequest(topology="sharded"))
    assert {k: v.name for k, v in sharded.storages.items()} == {
        "default": "gitaly1", "storage1": "gitaly2"}
    single = resolve(SpecRequest(topology="single"))
    assert single.nodes[0].roles == (Role.APP, Role.GITALY)


def test_set_overrides_any_field() -> None:
    lab = resolve(SpecRequest(topology="scaled", sets=(
        "tls=true", "nodes.gitaly1.secrets=own", "nodes.gitaly1.internal_api_url=")))
    gitaly = lab.node("gitaly1")
    assert gitaly.tls
    assert gitaly.gitaly_address == "tls://gitaly1:9999"
    assert gitaly.secrets is SecretsPolicy.OWN
    assert gitaly.internal_api_url == ""
    assert not lab.app.tls  # TLS is a Gitaly listener setting


def test_file_merges_over_topology(tmp_path: Path) -> None:
    path = spec_file(tmp_path, "topology: scaled\nname: cust\nversion: 15.9.8\n"
                     "nodes:\n  gitaly1:\n    storages: [default]\n    secrets: none\n")
    lab = resolve(SpecRequest(file=path))
    assert lab.name == "cust"
    assert lab.version == Version(15, 9, 8)
    assert [s.name for s in lab.node("gitaly1").storages] == ["default"]
    assert lab.node("gitaly1").secrets is SecretsPolicy.NONE


def test_default_version_is_newest_reference() -> None:
    # The committed key data (scripts/omnibus_keys.py) is the reference on any clone.
    data = Path(__file__).resolve().parents[2] / "lab" / "omnibus" / "data"
    releases = [p.name.removeprefix("keys-").removesuffix(".txt") for p in data.glob("keys-*")]
    assert max(releases, key=Version.parse) == DEFAULT_VERSION
    assert sorted(releases, key=Version.parse) == list(REFERENCE_VERSIONS)


@pytest.mark.parametrize(("version", "legacy", "git_data_dirs", "role", "gitaly_secret",
                          "unicorn"), [
    ("11.11.8", True, True, False, False, True),
    ("12.10.14", True, True, False, False, True),
    ("13.12.15", True, True, False, False, True),
    ("14.0.0", True, True, False, False, False),
    ("15.9.8", True, True, False, False, False),
    ("15.10.0", False, True, False, False, False),
    ("17.5.0", False, True, False, True, False),
    ("17.6.0", False, True, True, True, False),
    ("17.7.9", False, True, True, True, False),
    ("17.8.0", False, False, True, True, False),
    ("19.3.0", False, False, True, True, False),
])
def test_dialect_thresholds(version: str, legacy: bool, git_data_dirs: bool, role: bool,
                            gitaly_secret: bool, unicorn: bool) -> None:
    d = dialect_for(Version.parse(version))
    assert d.gitaly_configuration is not legacy
    assert d.repositories_storages is not git_data_dirs
    assert d.gitaly_role is role
    assert d.gitaly_secret is gitaly_secret
    assert ("unicorn" in d.web_servers) is unicorn


BAD_FILES = [
    ("nodes:\n  gitlab:\n    roles: [app]\n    colour: blue\n",
     "{f}:4: nodes.gitlab.colour: unknown key 'colour'; valid keys here: roles, storages, secrets, "
     "tls, tls_san, trust_ca, gitaly_token, internal_api_url, publish, omnibus_config, "
     "gitaly_nodes, replication_factor, place, install"),
    ("topology: huge\n",
     "{f}:1: topology: unknown topology 'huge'; known topologies: cluster, scaled, sharded, "
     "single"),
    ("topology: scaled\ntls: yes please\n",
     "{f}:2: tls: expected true or false, got str 'yes please'"),
    ("topology: scaled\nnodes:\n  gitaly1:\n    secrets: shred\n",
     "{f}:4: nodes.gitaly1.secrets: 'shred' is not one of: shared, own, none"),
    ("topology: scaled\nversion: 11.10.0\n",
     "{f}:2: version: GitLab 11.10.0 is older than the oldest supported release 11.11.0"),
    ("topology: scaled\nversion: latest\n",
     "{f}:2: version: 'latest' is not a GitLab version of the form X.Y.Z (e.g. 19.3.0)"),
    ("topology: scaled\nnodes:\n  gitaly1:\n    storages: [storage1]\n",
     "{f}:2: nodes: GitLab needs a storage named 'default'; storages here: storage1"),
    ("nodes:\n  gitlab:\n    roles: [app]\n  gitlab2:\n    roles: [app]\n",
     "{f}:1: nodes: a lab needs exactly one app node, found 2"),
    ("topology: sharded\nnodes:\n  gitaly2:\n    storages: [default]\n",
     "{f}:4: nodes.gitaly2.storages: storage 'default' is already served by gitaly1"),
    ("topology: scaled\nnodes:\n  gitlab:\n    publish: {http: true}\n",
     "{f}:4: nodes.gitlab.publish.http: expected a port number (0 = any free port), got True"),
    ("nodes:\n  gitlab:\n    roles: [app]\n  db:\n    roles: [postgres]\n",
     "{f}:5: nodes.db.roles: a postgres node is Praefect's database: the lab needs a praefect "
     "node too"),
    ("topology: cluster\nversion: 12.10.14\n",
     "{f}:2: version: Gitaly Cluster (Praefect) labs start at GitLab 13.3.0: Omnibus has a "
     "praefect cookbook from 12.4.0, but its defaults run a database-backed cluster with "
     "automatic failover only from 13.3.0; use --version 13.3.0 or newer"),
    ("topology: cluster\nversion: 12.3.0\n",
     "{f}:2: version: Gitaly Cluster (Praefect) labs start at GitLab 13.3.0: Omnibus has no "
     "Praefect before 12.4.0; use --version 13.3.0 or newer"),
    ("topology: cluster\nversion: 13.8.0\nnodes:\n  praefect:\n    replication_factor: 2\n",
     "{f}:5: nodes.praefect.replication_factor: GitLab 13.8.0 replicates every repository to "
     "every Gitaly node of a virtual storage (default_replication_factor came with 13.9); "
     "leave it unset or use --version 13.9.0 or newer"),
    ("topology: cluster\nnodes:\n  praefect:\n    gitaly_nodes: [gitaly1, gitlab]\n",
     "{f}:4: nodes.praefect.gitaly_nodes.1: 'gitlab' is not a gitaly node of this lab"),
    ("topology: cluster\nnodes:\n  praefect-db: null\n",
     "{f}:3: nodes.praefect-db.roles: every node needs roles, e.g. [app] or [gitaly]"),
    ("topology: cluster\nnodes:\n  praefect:\n    roles: [praefect, gitaly]\n",
     "{f}:4: nodes.praefect.roles: a praefect node has no other role (GitLab's docs: Praefect "
     "and its database on nodes of their own)"),
    ("topology: scaled\nnodes:\n  gitaly1:\n    replication_factor: 2\n",
     "{f}:4: nodes.gitaly1.replication_factor: only praefect nodes have this key"),
    ("topology: scaled\nnodes: [gitlab]\n",
     "{f}:2: nodes: expected a mapping, got list ['gitlab']"),
    ("topology: scaled\n  name: x\n", "{f}:2: not valid YAML: mapping values are not allowed here"),
    ("- a\n- b\n", "{f}:1: a lab spec must be a mapping of keys (name, topology, nodes, ...)"),
    ("topology: scaled\nname: My Lab\n",
     "{f}:2: name: invalid lab name 'My Lab' (lower-case letters, digits and -, at most 40)"),
    ("topology: scaled\nnodes:\n  gitaly1:\n    roles: [gitaly]\n    storages: []\n",
     "{f}:5: nodes.gitaly1.storages: a gitaly node needs at least one storage"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=range(len(BAD_FILES)))
def test_bad_spec_files(tmp_path: Path, text: str, message: str) -> None:
    path = spec_file(tmp_path, text)
    with pytest.raises(SpecError) as info:
        resolve(SpecRequest(file=path))
    assert str(info.value) == message.format(f=path)


@pytest.mark.parametrize(("sets", "message"), [
    (("nodes.gitaly1.secrets=maybe",),
     "--set nodes.gitaly1.secrets=maybe: nodes.gitaly1.secrets: 'maybe' is not one of: shared, "
     "own, none"),
    (("flavour=sim",),
     "--set flavour=sim: flavour: unknown key 'flavour'; valid keys here: name, topology, version, "
     "edition, flavor, image, tls, gitaly_token, engine, swarm, nodes"),
    (("tls",), "--set tls: expected KEY=VALUE, e.g. --set nodes.gitaly1.secrets=own"),
    (("=1",), "--set =1: empty key; expected KEY=VALUE, e.g. --set tls=true"),
    (("nodes.gitlab.roles.x=1",),
     "--set nodes.gitlab.roles.x=1: nodes.gitlab.roles.x: nodes.gitlab.roles is not a mapping, "
     "so it has no key 'x'"),
    (("nodes.gitaly3.tls=true",),
     "--set nodes.gitaly3.tls=true: nodes.gitaly3.roles: every node needs roles, e.g. [app] or "
     "[gitaly]"),
])
def test_bad_sets(sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve(SpecRequest(topology="scaled", sets=sets))
    assert str(info.value) == message


def test_unknown_topology_on_command_line() -> None:
    with pytest.raises(SpecError) as info:
        resolve(SpecRequest(topology="ha"))
    assert str(info.value) == ("command line: topology: unknown topology 'ha'; "
                               "known topologies: cluster, scaled, sharded, single")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        resolve(SpecRequest(file=tmp_path / "nope.yaml"))
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read the spec file: " \
        "No such file or directory"


@pytest.mark.parametrize(("spath", "message"), [
    ("/opt/gitlab/git-data", "inside the system directory /opt/gitlab"),
    ("/var/log/gitlab/repos", "inside the system directory /var/log/gitlab"),
    ("/var/opt/gitlab/gitaly", "inside the system directory /var/opt/gitlab/gitaly"),
    ("/var/opt/gitlab/repositories", "top-level folder"),
    ("/var/opt", "top-level folder"),
])
def test_storage_paths_omnibus_owns_are_refused(spath: str, message: str) -> None:
    from lab.spec.labspec import check_storage_path
    from lab.spec.yamlfile import Origins

    with pytest.raises(SpecError, match=message):
        check_storage_path(spath, ("storages", "0", "path"), Origins())
    check_storage_path("/var/opt/gitlab/gitaly-data", ("storages", "0", "path"), Origins())
