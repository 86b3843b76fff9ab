"""lab.omnibus.keypaths: the one table of where each gitlab.rb setting lives per release."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.model.topology import Lab
from lab.omnibus import keypaths
from lab.omnibus.dialect import LEGACY_GITALY_KEYS, dialect_for, getter, read_app, read_gitaly
from lab.omnibus.keys import known_key, known_top
from lab.omnibus.release import FIRST, REFERENCE_RELEASES, UNBOUNDED, Version
from lab.render.gitlab_rb import render_gitlab_rb
from lab.spec.labspec import SpecRequest, resolve
from lab.spec.rb_reader import read_rb

RELEASES = [Version.parse(r) for r in REFERENCE_RELEASES]
# Every release a row's bounds name, and the one before it: where a table error shows.
BOUNDS = sorted({b for k in keypaths.KEY_PATHS for b in (k.since, k.until, k.write_since,
                                                           k.write_until)
                 if b is not None and b not in (FIRST, UNBOUNDED)})
EDGES = sorted({*RELEASES, *BOUNDS, *(Version(b.major, b.minor - 1, 0) for b in BOUNDS
                                      if b.minor > 0)})
# Settings the renderer writes in exactly one spelling in every release.
SINGLE = (keypaths.EXTERNAL_URL, keypaths.GITALY_ENABLED, keypaths.APP_GITALY_TOKEN,
          keypaths.INTERNAL_API_URL, keypaths.MANAGE_ETC, keypaths.GITALY_LISTEN,
          keypaths.GITALY_TLS_LISTEN, keypaths.GITALY_CERTIFICATE, keypaths.GITALY_KEY,
          keypaths.GITALY_TOKEN, keypaths.APP_STORAGES)


@pytest.mark.parametrize("version", RELEASES, ids=str)
def test_every_key_written_for_a_reference_release_is_one_it_knows(version: Version) -> None:
    # The reference data (templates and attribute lists) is the judge, not the table. (Rows
    # only read may be absent there: 15.11 still remaps legacy keys no template shows.)
    for row in keypaths.KEY_PATHS:
        if not row.written_in(version) or row.path == ("roles",):
            continue
        if len(row.path) == 1:
            assert known_top(row.path[0], version), (row, version)
        else:
            assert known_key(row.path[0], row.path[1], version), (row, version)


@pytest.mark.parametrize("version", EDGES, ids=str)
def test_the_toolkit_writes_only_what_the_release_reads(version: Version) -> None:
    for row in keypaths.KEY_PATHS:
        if row.written_in(version):
            assert row.read_in(version), (row, version)


@pytest.mark.parametrize("version", EDGES, ids=str)
def test_each_single_setting_has_one_written_spelling(version: Version) -> None:
    for setting in SINGLE:
        assert len(keypaths.written(setting, version)) == 1, (setting, version)
    assert keypaths.written(keypaths.GITALY_STORAGES, version)


def test_spellings_change_where_the_releases_say() -> None:
    def spelled(setting: str, version: str) -> list[str]:
        return [k.ruby for k in keypaths.written(setting, Version.parse(version))]

    assert spelled(keypaths.GITALY_TOKEN, "15.9.8") == ["gitaly['auth_token']"]
    assert spelled(keypaths.GITALY_TOKEN, "15.10.0") == ["gitaly['configuration'][:auth][:token]"]
    # Gitaly's own list, and git_data_dirs beside it while reconfigure makes folders only
    # from that (lab/omnibus/directories.py).
    assert spelled(keypaths.GITALY_STORAGES, "12.10.14") == ["gitaly['storage']", "git_data_dirs"]
    assert spelled(keypaths.GITALY_STORAGES, "13.0.0") == ["git_data_dirs"]
    assert spelled(keypaths.GITALY_STORAGES, "17.7.0") == [
        "gitaly['configuration'][:storage]", "git_data_dirs"]
    assert spelled(keypaths.GITALY_STORAGES, "17.8.0") == ["gitaly['configuration'][:storage]"]
    assert spelled(keypaths.APP_STORAGES, "17.7.0") == ["git_data_dirs"]
    assert spelled(keypaths.APP_STORAGES, "17.8.0") == ["gitlab_rails['repositories_storages']"]
    # Both spellings are read in 15.10-15.11, the legacy one no longer in 16.0.
    legacy = [k.ruby for k in keypaths.read_order(keypaths.GITALY_TOKEN, Version(15, 11, 0))]
    assert legacy == ["gitaly['configuration'][:auth][:token]", "gitaly['auth_token']"]
    assert len(keypaths.read_order(keypaths.GITALY_TOKEN, Version(16, 0, 0))) == 1


def test_legacy_gitaly_keys_are_15_10s_remap() -> None:
    # gitaly/libraries/gitaly.rb remap_legacy_values (15.10.0).
    assert LEGACY_GITALY_KEYS == {
        "socket_path": ("socket_path",), "runtime_dir": ("runtime_dir",),
        "listen_addr": ("listen_addr",), "prometheus_listen_addr": ("prometheus_listen_addr",),
        "tls_listen_addr": ("tls_listen_addr",), "certificate_path": ("tls", "certificate_path"),
        "key_path": ("tls", "key_path"), "auth_token": ("auth", "token"),
        "auth_transitioning": ("auth", "transitioning"), "storage": ("storage",),
        "logging_level": ("logging", "level"), "logging_format": ("logging", "format")}


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(KeyError, match="no key path"):
        keypaths.written("gitaly listen adress", Version(17, 0, 0))


@pytest.mark.parametrize("version", ["11.11.8", "13.12.15", "15.11.13", "17.7.0", "19.3.0"])
@pytest.mark.parametrize("tls", [False, True])
def test_what_the_renderer_writes_the_reader_reads_back(tmp_path: Path, version: str,
                                                       tls: bool) -> None:
    # Both sides go through the table: a row changed for one side only breaks this.
    lab: Lab = resolve(SpecRequest(topology="sharded", version=version,
                                   sets=(f"tls={str(tls).lower()}",)))
    d = dialect_for(lab.version)
    for node in lab.nodes:
        path = tmp_path / f"{node.name}.rb"
        path.write_text(render_gitlab_rb(lab, node, "tok-en"))
        get = getter(read_rb(path).settings)
        if node.is_app:
            app = read_app(get, d)
            assert app.token == "tok-en"
            assert {s: r["address"] for s, r in app.storages.items()} == {
                s: n.gitaly_address for s, n in lab.storages.items()}
            continue
        gitaly = read_gitaly(get, d)
        assert gitaly.token == "tok-en"
        assert (gitaly.tls_listen_addr if tls else gitaly.listen_addr) == \
            f"0.0.0.0:{node.gitaly_port}"
        assert gitaly.storages == {s.name: s.repositories_path for s in node.storages}
