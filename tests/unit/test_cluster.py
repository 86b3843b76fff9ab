"""Gitaly Cluster (Praefect) labs: the wiring the three sides must agree on, per release.

GitLab's docs (doc/administration/gitaly/praefect/configure.md): the app dials Praefect
with Praefect's external token; Praefect dials each Gitaly node with the internal token,
naming each node's storage as that node's gitaly['configuration'][:storage] does.
"""

from __future__ import annotations

import re

import pytest
from conftest import fixed_secrets

from lab.errors import BadInput, SpecError
from lab.lifecycle.handle import up
from lab.model.topology import Lab
from lab.omnibus import praefect as pf
from lab.omnibus.release import Version
from lab.render.gitlab_rb import render_gitlab_rb, token_of
from lab.render.secrets import LabSecrets
from lab.spec.labspec import SpecRequest, resolve

RELEASES = ("13.3.0", "13.8.0", "13.9.0", "15.8.0", "15.9.0", "15.11.13", "16.0.0", "19.3.0")


def cluster(version: str = "19.3.0", *sets: str) -> tuple[Lab, LabSecrets, dict[str, str]]:
    lab = resolve(SpecRequest(topology="cluster", version=version, flavor="omnibus", sets=sets))
    sec = fixed_secrets(lab)
    return lab, sec, {n.name: render_gitlab_rb(lab, n, sec.gitaly_token, sec) for n in lab.nodes}


def quoted_after(text: str, key: str) -> list[str]:
    return re.findall(rf"{key}(?:'\])?(?: =>|:| =)\s*'([^']*)'", text)


@pytest.mark.parametrize("version", RELEASES)
def test_three_sides_agree(version: str) -> None:
    lab, sec, rb = cluster(version)
    # App -> Praefect with the external token.
    assert "'default' => { 'gitaly_address' => 'tcp://praefect:2305' }" in rb["gitlab"]
    assert f"gitlab_rails['gitaly_token'] = '{sec.gitaly_token}'" in rb["gitlab"]
    praefect = rb["praefect"]
    external = quoted_after(praefect, "auth_token") + quoted_after(praefect, "token")
    assert external[0] == sec.gitaly_token
    # Praefect -> each Gitaly with the internal token, each storage named as the node names it.
    for name in ("gitaly1", "gitaly2", "gitaly3"):
        assert sec.praefect_token in rb[name]
        assert sec.gitaly_token not in rb[name]
        assert f"'{name}'" in rb[name]  # the node's storage name
        assert re.search(rf"(?:'{name}' =>|storage: '{name}', address: 'tcp://{name}:8075', "
                         rf"token: '{sec.praefect_token}')", praefect)
        assert token_of(lab, sec, lab.node(name)) == sec.praefect_token
    assert token_of(lab, sec, lab.node("praefect")) == sec.gitaly_token
    assert sec.praefect_token != sec.gitaly_token
    # The database: Praefect's settings name the postgres node, user and password.
    assert "praefect-db" in praefect
    assert sec.praefect_db_password in praefect
    assert "roles(['postgres_role'])" in rb["praefect-db"]


@pytest.mark.parametrize(("version", "dialect"), [
    ("13.3.0", "nodes-only"), ("13.8.0", "nodes-only"), ("13.9.0", "factor"),
    ("15.8.0", "factor"), ("15.9.0", "configuration"), ("19.3.0", "configuration")])
def test_praefect_dialect_per_release(version: str, dialect: str) -> None:
    text = cluster(version)[2]["praefect"]
    assert ("praefect['configuration'] = {" in text) is (dialect == "configuration")
    assert ("praefect['virtual_storages'] = {" in text) is (dialect != "configuration")
    assert ("'nodes' => {" in text) is (dialect == "factor")
    assert ("default_replication_factor" in text) is (dialect != "nodes-only")


def test_replication_factor_is_settable() -> None:
    text = cluster("19.3.0", "nodes.praefect.replication_factor=2")[2]["praefect"]
    assert "default_replication_factor: 2," in text
    assert "default_replication_factor: 3," in cluster("19.3.0")[2]["praefect"]


def test_tls_on_praefect() -> None:
    _, sec, rb = cluster("19.3.0", "tls=true")
    assert "'default' => { 'gitaly_address' => 'tls://praefect:3305' }" in rb["gitlab"]
    assert "tls_listen_addr: '0.0.0.0:3305'," in rb["praefect"]
    assert "address: 'tls://gitaly1:9999'" in rb["praefect"]
    assert "praefect.crt" in sec.tls


def test_a_gitaly_token_of_its_own_differs_from_the_internal_one() -> None:
    _, sec, rb = cluster("19.3.0", "nodes.gitaly2.gitaly_token=other")
    assert "token: 'other'" in rb["gitaly2"]
    assert f"token: '{sec.praefect_token}'" in rb["gitaly1"]
    assert rb["praefect"].count(sec.praefect_token) == 3  # Praefect still sends its own


def test_storage_name_mismatch_is_renderable() -> None:
    # Praefect names gitaly3's storage after the node; the node calls it otherwise.
    rb = cluster("19.3.0", "nodes.gitaly3.storages=[gitaly-3]")[2]
    assert "name: 'gitaly-3'" in rb["gitaly3"]
    assert "storage: 'gitaly3'" in rb["praefect"]


def test_older_release_is_a_usage_error_naming_the_first() -> None:
    with pytest.raises(SpecError, match=r"start at GitLab 13\.3\.0.*cookbook from 12\.4\.0"):
        resolve(SpecRequest(topology="cluster", version="13.2.9"))
    assert pf.cluster_unsupported(Version.parse("13.3.0")) is None
    # SpecError is a usage error: exit code 2.
    assert SpecError("x").exit_code == 2


def test_sim_flavour_refuses_before_touching_docker() -> None:
    lab = resolve(SpecRequest(topology="cluster", flavor="sim"))
    with pytest.raises(BadInput, match="no Praefect yet"):
        up(lab)



def test_diagram_checks_three_sides() -> None:
    from lab.render.diagram import mermaid, mismatches, rendered_hashes

    lab, sec, _ = cluster("19.3.0")
    assert mismatches(lab, rendered_hashes(lab, sec)) == []
    chart = mermaid(lab, rendered_hashes(lab, sec))
    assert '-->|"gRPC tcp://praefect:2305 (default)"| n_praefect' in chart
    assert '-->|"gRPC tcp://gitaly2:8075 (gitaly2)"| n_gitaly2' in chart
    lab, sec, _ = cluster("19.3.0", "nodes.gitaly2.gitaly_token=x", "nodes.gitlab.gitaly_token=y",
                          "nodes.gitaly3.storages=[gitaly-3]")
    assert mismatches(lab, rendered_hashes(lab, sec)) == [
        "gitaly auth token: gitlab vs praefect: differs",
        "gitaly auth token: praefect vs gitaly2: differs",
        "storage name: praefect vs gitaly3: praefect says gitaly3, the node serves gitaly-3"]


def test_collect_hash_table_has_an_internal_token_row() -> None:
    from lab.support.collect import hash_table

    table = hash_table({}, {"gitlab": "ext", "praefect": "ext"},
                       {"praefect": "int", "gitaly1": "int", "gitaly2": "other"})
    assert table["gitlab.rb gitaly token"]["praefect"] == table["gitlab.rb gitaly token"]["gitlab"]
    row = table["praefect internal token"]
    assert row["praefect"] == row["gitaly1"] != row["gitaly2"]
    assert row["gitlab"] is None
