"""`lab import`: round trips through the renderer, customer-style files, Ruby errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.errors import SpecError
from lab.model.topology import Lab
from lab.render.gitlab_rb import render_gitlab_rb
from lab.render.secrets import LabSecrets, ensure_secrets
from lab.spec.importer import check_importable, import_files, node_inputs
from lab.spec.labspec import SpecRequest, build_lab, resolve
from lab.spec.rb_reader import read_rb
from lab.spec.yamlfile import Origins
from lab.store.labdir import write_lab

pytestmark = pytest.mark.skipif(shutil.which("ruby") is None, reason="needs ruby")

TOKEN_PATHS = (("gitlab_rails", "gitaly_token"), ("gitaly", "auth_token"),
               ("gitaly", "configuration", "auth", "token"), ("praefect", "auth_token"),
               ("praefect", "configuration", "auth", "token"))


def _tokens_to_labels(settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Replace token values by T0, T1, ... in order of appearance: equality is what counts."""
    labels: dict[str, str] = {}
    for node in sorted(settings):
        for path in TOKEN_PATHS:
            cursor: Any = settings[node]
            for part in path[:-1]:
                cursor = cursor.get(part, {}) if isinstance(cursor, dict) else {}
            if isinstance(cursor, dict) and path[-1] in cursor:
                value = cursor[path[-1]]
                cursor[path[-1]] = labels.setdefault(value, f"T{len(labels)}")
    return settings


def _evaluate_lab(lab: Lab, token: str, tmp: Path,
                  cluster: LabSecrets | None = None) -> dict[str, dict[str, Any]]:
    """``cluster``: the lab's Praefect internal token and database password (never imported:
    random per lab), so both sides of a round trip render with the same."""
    sec = None
    if cluster is not None:
        sec = ensure_secrets(lab)
        sec.praefect_token, sec.praefect_db_password = (cluster.praefect_token,
                                                        cluster.praefect_db_password)
        sec.gitaly_token = token
    out = {}
    for node in lab.nodes:
        path = tmp / f"{node.name}.rb"
        path.write_text(render_gitlab_rb(lab, node, token, sec))
        out[node.name] = read_rb(path).settings
    return _tokens_to_labels(out)


ROUND_TRIPS = [
    ("scaled", "12.10.14", ()),
    ("scaled", "12.10.14", ("tls=true",)),
    ("scaled", "13.12.15", ()),
    ("scaled", "15.9.8", ()),
    ("scaled", "15.9.8", ("tls=true",)),
    ("scaled", "16.11.10", ("tls=true",)),
    ("scaled", "17.7.7", ()),
    ("scaled", "19.3.0", ("nodes.gitaly1.gitaly_token=wrong-token-for-the-test",)),
    ("scaled", "19.3.0", ("nodes.gitaly1.internal_api_url=",)),
    ("sharded", "17.11.7", ("nodes.gitaly2.tls=true",)),
    ("single", "19.3.0", ()),
    ("cluster", "13.8.8", ()),
    ("cluster", "13.12.15", ("nodes.gitaly2.gitaly_token=not-the-internal-one",)),
    ("cluster", "15.9.8", ()),
    ("cluster", "16.11.10", ("nodes.gitaly3.storages=[gitaly-3]",)),
    ("cluster", "19.3.0", ("tls=true", "nodes.praefect.replication_factor=2")),
    ("cluster", "19.3.0", ("nodes.praefect.gitaly_token=not-the-apps",)),
]


@pytest.mark.parametrize(("topology", "version", "sets"), ROUND_TRIPS)
def test_round_trip_renders_the_same_settings(tmp_path: Path, topology: str, version: str,
                                              sets: tuple[str, ...]) -> None:
    lab = resolve(SpecRequest(topology=topology, version=version, sets=sets))
    rendered = write_lab(lab, tmp_path / "lab", image="unused")
    files = sorted((tmp_path / "lab" / "nodes").glob("*/gitlab.rb"))
    result = import_files(node_inputs(files, []))
    check_importable(result)
    again = build_lab(result.spec, Origins())
    assert {n.name for n in again.nodes} == {n.name for n in lab.nodes}
    assert again.dialect.name == lab.dialect.name
    assert again.dialect.gitaly_node_disabled() == lab.dialect.gitaly_node_disabled()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cluster = rendered.secrets if lab.praefect_nodes else None
    before = _evaluate_lab(lab, rendered.secrets.gitaly_token, tmp_path / "a", cluster)
    after = _evaluate_lab(again, "another-random-lab-token", tmp_path / "b", cluster)
    assert after == before
    assert not result.unmapped


def test_customer_secret_values_are_never_copied(tmp_path: Path) -> None:
    lab = resolve(SpecRequest(topology="scaled", version="19.3.0",
                              sets=("nodes.gitaly1.gitaly_token=customer-gitaly-secret-1",
                                    "gitaly_token=customer-app-secret-2")))
    write_lab(lab, tmp_path / "lab", image="unused")
    result = import_files(node_inputs(sorted((tmp_path / "lab").glob("nodes/*/gitlab.rb")), []))
    text = result.to_yaml()
    assert "customer-gitaly-secret-1" not in text
    assert "customer-app-secret-2" not in text
    assert "gitaly_token" in result.spec["nodes"]["gitaly1"]
    assert "gitaly_token" not in result.spec["nodes"]["gitlab"]


LEGACY_GITALY = """\
# customer's Gitaly server, GitLab 15.4
postgresql['enable'] = false
redis['enable'] = false
nginx['enable'] = false
puma['enable'] = false
sidekiq['enable'] = false
gitlab_workhorse['enable'] = false
prometheus_monitoring['enable'] = false
gitlab_rails['rake_cache_clear'] = false
gitlab_rails['auto_migrate'] = false
gitlab_rails['internal_api_url'] = 'https://gitlab.example.com'
gitaly['tls_listen_addr'] = "0.0.0.0:9999"
gitaly['certificate_path'] = "/etc/gitlab/ssl/cert.pem"
gitaly['key_path'] = "/etc/gitlab/ssl/key.pem"
gitaly['auth_token'] = '<REDACTED>'
git_data_dirs({
  'default' => { 'path' => '/var/opt/gitlab/git-data' },
  'storage1' => { 'path' => '/mnt/gitlab/git-data' },
})
"""

LEGACY_APP = """\
external_url 'https://gitlab.example.com'
gitaly['enable'] = false
gitlab_rails['gitaly_token'] = 'REDACTED'
gitlab_rails['time_zone'] = 'Europe/Berlin'
git_data_dirs({
  'default' => { 'gitaly_address' => 'tls://gitaly.internal.example.com:9999' },
  'storage1' => { 'gitaly_address' => 'tls://gitaly.internal.example.com:9999' },
})
"""


def test_legacy_customer_files(tmp_path: Path) -> None:
    (tmp_path / "gitlab.rb").write_text(LEGACY_APP)
    (tmp_path / "gitaly.rb").write_text(LEGACY_GITALY)
    result = import_files(node_inputs([tmp_path / "gitlab.rb", tmp_path / "gitaly.rb"], []))
    check_importable(result)
    spec = result.spec
    assert spec["version"] == "15.9.8"
    gitaly = spec["nodes"]["gitaly"]
    assert gitaly["roles"] == ["gitaly"]
    assert gitaly["tls"] is True
    assert gitaly["storages"] == [{"name": "default"},
                                  {"name": "storage1", "path": "/mnt/gitlab/git-data"}]
    # Redacted tokens on both sides: assumed equal, so no per-node token.
    assert "gitaly_token" not in gitaly
    assert "internal_api_url" not in gitaly  # it pointed at the app: the lab's default
    assert spec["nodes"]["gitlab"]["roles"] == ["app"]
    unmapped = "\n".join(result.unmapped)
    assert "gitlab_rails['time_zone']" in unmapped
    assert "prometheus_monitoring['enable']" in unmapped
    # The lab writes rake_cache_clear on its Gitaly nodes too: mapped, not left over.
    assert "gitlab_rails['rake_cache_clear']" not in unmapped
    notes = "\n".join(result.notes)
    assert "gitaly.internal.example.com" in notes
    assert "external_url https://gitlab.example.com" in notes
    text = result.to_yaml()
    assert "# NOT reproduced" in text
    assert "time_zone" in text


NEW_GITALY = """\
roles(['gitaly_role'])
gitlab_rails['internal_api_url'] = 'http://10.0.0.9:8080'
gitaly['configuration'] = {
  listen_addr: '0.0.0.0:8075',
  prometheus_listen_addr: '0.0.0.0:9236',
  auth: { token: 'abc-the-gitaly-token' },
  storage: [{ name: 'default', path: '/var/opt/gitlab/git-data/repositories' }],
}
"""

NEW_APP = """\
external_url 'http://gitlab.example.com'
gitaly['enable'] = false
gitlab_rails['gitaly_token'] = 'another-token-entirely'
gitlab_rails['repositories_storages'] = {
  'default' => { 'gitaly_address' => 'tcp://gitaly1:8075' },
}
"""


def test_new_dialect_with_token_mismatch(tmp_path: Path) -> None:
    (tmp_path / "app.rb").write_text(NEW_APP)
    (tmp_path / "g.rb").write_text(NEW_GITALY)
    result = import_files(node_inputs([], [f"gitlab={tmp_path / 'app.rb'}",
                                           f"gitaly1={tmp_path / 'g.rb'}"]))
    check_importable(result)
    spec = result.spec
    assert spec["version"] == "19.3.0"
    gitaly = spec["nodes"]["gitaly1"]
    assert gitaly["gitaly_token"] not in ("abc-the-gitaly-token", "another-token-entirely")
    assert len(gitaly["gitaly_token"]) == 64
    # Not the app: kept, so the push failure reproduces.
    assert gitaly["internal_api_url"] == "http://10.0.0.9:8080"
    assert any("prometheus_listen_addr" in u for u in result.unmapped)
    assert "abc-the-gitaly-token" not in result.to_yaml()


def test_version_option_wins_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "gitlab.rb").write_text(NEW_APP)
    (tmp_path / "gitaly1.rb").write_text(NEW_GITALY)
    files = node_inputs([tmp_path / "gitlab.rb", tmp_path / "gitaly1.rb"], [])
    result = import_files(files, version="16.11.10")
    assert result.spec["version"] == "16.11.10"
    assert any("outside" in n for n in result.notes)


def test_a_version_newer_than_known_names_what_import_can_do(tmp_path: Path) -> None:
    # `lab import` has no --force-version, so the message must not send the user there.
    (tmp_path / "gitlab.rb").write_text(NEW_APP)
    files = node_inputs([tmp_path / "gitlab.rb"], [])
    with pytest.raises(SpecError, match=r"^--version: GitLab 99\.0\.0 is newer .* "
                       r"import with --version 19\.3\.0 and start the spec with `lab up -f SPEC "
                       r"--version 99\.0\.0 --force-version`$"):
        import_files(files, version="99.0.0")


def test_app_only_makes_up_the_gitaly_node(tmp_path: Path) -> None:
    (tmp_path / "gitlab.rb").write_text(NEW_APP)
    result = import_files(node_inputs([tmp_path / "gitlab.rb"], []))
    check_importable(result)
    assert result.spec["nodes"]["gitaly1"]["roles"] == ["gitaly"]
    assert any("no file for the Gitaly server" in n for n in result.notes)


def test_ruby_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "gitaly1.rb"
    # A missing comma after listen_addr: Ruby stops at the next line.
    bad.write_text("gitaly['enable'] = true\n\ngitaly['configuration'] = {\n"
                   "  listen_addr: '0.0.0.0:8075'\n  auth: { token: 'x' },\n}\n")
    with pytest.raises(SpecError) as info:
        import_files(node_inputs([bad], []))
    assert info.value.source == str(bad)
    assert info.value.line == 5
    assert "not valid Ruby: syntax error" in str(info.value)
    assert str(info.value).startswith(f"{bad}:5: ")


def test_ruby_code_is_listed_with_its_line_never_run(tmp_path: Path) -> None:
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://x'\nraise 'boom'\n")
    read = read_rb(rb)
    assert read.settings == {"external_url": "http://x"}
    assert read.skipped == ((2, "raise 'boom'"),)


def test_string_escapes_are_read_as_ruby_reads_them(tmp_path: Path) -> None:
    rb = tmp_path / "gitlab.rb"
    rb.write_text("x['single'] = 'it\\'s \\\\ \\q'\n"
                  "x['double'] = \"a\\tb\\\"c\\\\d\"\n"
                  "x['unicode'] = \"\\u0041\"\n"
                  "x['percent'] = %q(a\\b)\n"
                  "x['huge'] = 1e400\n"
                  "x['words'] = %w[gitaly_role a]\n"
                  "x['interpolated'] = %W[a#{1}]\n")
    read = read_rb(rb)
    assert read.settings == {"x": {"single": "it's \\ \\q", "double": "a\tb\"c\\d",
                                   "words": ["gitaly_role", "a"]}}
    # What the reader cannot spell exactly is listed, never taken with its backslashes.
    assert [line for line, _ in read.skipped] == [3, 4, 5, 7]


def test_non_ascii_reads_under_a_c_locale(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # CI runners and containers often run with LANG=C: the file is UTF-8 all the same.
    for name in ("LANG", "LC_ALL", "LC_CTYPE"):
        monkeypatch.setenv(name, "C")
    rb = tmp_path / "gitlab.rb"
    rb.write_text("# Düsseldorf\nexternal_url 'http://gitlab.example'\n"
                  "gitlab_rails['gitlab_email_display_name'] = 'GitLab Düsseldorf'\n",
                  encoding="utf-8")
    read = read_rb(rb)
    assert read.settings["gitlab_rails"] == {"gitlab_email_display_name": "GitLab Düsseldorf"}
    assert read.skipped == ()


def test_deep_nesting_is_listed_not_a_crash(tmp_path: Path) -> None:
    # Valid Ruby deeper than Ruby's stack or JSON's 100 levels: one statement not read.
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://x'\n"
                  + f"x['a'] = {'[' * 5000}{']' * 5000}\n"
                  + "x" + "['a']" * 900 + " = 1\n"
                  + f"x['b'] = {'[' * 900}{']' * 900}\n")
    read = read_rb(rb)
    assert read.settings == {"external_url": "http://x"}
    assert [line for line, _ in read.skipped] == [2, 3, 4]


def test_unknown_encoding_is_a_spec_error_without_a_ruby_backtrace(tmp_path: Path) -> None:
    rb = tmp_path / "gitlab.rb"
    rb.write_text("# encoding: bogus\nexternal_url 'http://x'\n")
    with pytest.raises(SpecError) as info:
        read_rb(rb)
    assert info.value.line == 1
    assert "unknown encoding name: bogus" in str(info.value)
    assert ".rb:" not in str(info.value).split(": ", 1)[1]  # no Ruby backtrace lines


def test_omnibus_config_is_evaluated_first_and_ours_never_leaks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://x'\ngitlab_rails['b'] = 2\n")
    monkeypatch.setenv("GITLAB_OMNIBUS_CONFIG", "gitlab_rails['leaked'] = 1")
    assert "leaked" not in read_rb(rb).settings["gitlab_rails"]
    data = read_rb(rb, omnibus_config="gitlab_rails['a'] = 1\ngitlab_rails['b'] = 1").settings
    assert data["gitlab_rails"] == {"a": 1, "b": 2}  # the file wins, as in Omnibus
    with pytest.raises(SpecError) as info:
        read_rb(rb, omnibus_config="x = \nend")
    assert info.value.source == "GITLAB_OMNIBUS_CONFIG"
    assert info.value.line == 2


@pytest.mark.parametrize(("path", "name"), [
    ("gitaly1.rb", "gitaly1"),
    ("gitlab-gitaly2.rb", "gitaly2"),
    ("gitlab.rb", "gitlab"),
    ("customer/gitlab.rb", "gitlab"),
    ("Gitaly_East.rb", "gitaly-east"),
])
def test_node_names_from_file_names(path: str, name: str) -> None:
    assert node_inputs([Path(path)], []) == [(name, Path(path))]


def test_several_gitlab_rb_are_named_by_folder() -> None:
    files = [Path("nodes/gitlab/gitlab.rb"), Path("nodes/gitaly1/gitlab.rb")]
    assert [n for n, _ in node_inputs(files, [])] == ["gitlab", "gitaly1"]


def test_two_files_for_one_node_is_an_error() -> None:
    with pytest.raises(SpecError, match="--node"):
        node_inputs([Path("a/gitaly1.rb"), Path("b/gitaly1.rb")], [])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        read_rb(tmp_path / "nope.rb")


# The releases where a key appears or goes between two reference releases.
@pytest.mark.parametrize("version", ["12.3.0", "13.0.0", "13.5.0", "14.0.0", "15.10.0", "16.0.0",
                                     "17.1.0", "17.6.0", "17.8.0", "18.0.0"])
def test_the_lab_own_gitlab_rb_draws_no_finding_between_reference_releases(
        tmp_path: Path, version: str) -> None:
    # Key data comes from reference releases; a release between two of them must still
    # know what the lab renders for it (15.10.0 once called gitaly['configuration'] unknown).
    from lab.omnibus import dialect

    for topology in ("single", "scaled"):  # an app with Gitaly, an app and a Gitaly node
        lab = resolve(SpecRequest(topology=topology, version=version))
        for node in lab.nodes:
            rb = tmp_path / f"{topology}-{node.name}.rb"
            rb.write_text(render_gitlab_rb(lab, node, "tok"))
            assert dialect.findings(read_rb(rb).settings, lab.version) == [], (topology, node.name)


def test_the_files_text_never_leaves_a_comment_of_the_spec(tmp_path: Path) -> None:
    # A key or value with a line break (YAML breaks at \n, \r, \x85, \u2028 and \u2029) was
    # written into the header's comments as is: its next line became a key of the spec.
    (tmp_path / "gitlab.rb").write_text(
        "external_url 'http://gitlab.example'\n"
        "gitlab_rails[\"x\\nimage: attacker.example/evil:1\\n#\"] = 1\n"
        "gitlab_rails[\"y\\u2028flavor: omnibus\"] = 1\n"
        "gitlab_rails[\"z\\rtls: true\"] = 1\n")
    result = import_files(node_inputs([tmp_path / "gitlab.rb"], []))
    check_importable(result)
    import yaml

    assert yaml.safe_load(result.to_yaml()) == result.spec
    assert "image: attacker.example/evil:1" in result.to_yaml()  # shown, as an escape
    assert all(line.startswith("#") for line in result.to_yaml().split("\nname:")[0]
               .splitlines())


DOCS_PRAEFECT = """\
gitaly['enable'] = false
postgresql['enable'] = false
redis['enable'] = false
nginx['enable'] = false
puma['enable'] = false
sidekiq['enable'] = false
gitlab_workhorse['enable'] = false
prometheus['enable'] = false
alertmanager['enable'] = false
gitlab_exporter['enable'] = false
gitlab_kas['enable'] = false
praefect['enable'] = true
praefect['auto_migrate'] = false
gitlab_rails['auto_migrate'] = false
praefect['configuration'] = {
  listen_addr: '0.0.0.0:2305',
  auth: { token: 'PRAEFECT_EXTERNAL_TOKEN' },
  database: { host: '10.6.0.141', port: 5432, user: 'praefect', password: 'PW',
              dbname: 'praefect_production' },
  virtual_storage: [
    { name: 'default',
      node: [
        { storage: 'gitaly-1', address: 'tcp://10.6.0.91:8075', token: 'PRAEFECT_INTERNAL_TOKEN' },
        { storage: 'gitaly-2', address: 'tcp://10.6.0.92:8075', token: 'PRAEFECT_INTERNAL_TOKEN' },
        { storage: 'gitaly-3', address: 'tcp://10.6.0.93:8075', token: 'PRAEFECT_INTERNAL_TOKEN' },
      ] },
  ],
}
"""
DOCS_APP = """\
external_url 'https://gitlab.example.com'
gitaly['enable'] = false
gitlab_rails['repositories_storages'] = {
  "default" => { "gitaly_address" => "tcp://10.6.0.131:2305",
                 "gitaly_token" => 'PRAEFECT_EXTERNAL_TOKEN' }
}
"""


def docs_gitaly(storage: str, token: str = "PRAEFECT_INTERNAL_TOKEN") -> str:
    return f"""\
postgresql['enable'] = false
redis['enable'] = false
nginx['enable'] = false
puma['enable'] = false
sidekiq['enable'] = false
gitlab_workhorse['enable'] = false
gitlab_kas['enable'] = false
gitlab_rails['auto_migrate'] = false
gitlab_rails['internal_api_url'] = 'https://gitlab.example.com'
gitaly['configuration'] = {{
  listen_addr: '0.0.0.0:8075',
  auth: {{ token: '{token}' }},
  storage: [{{ name: '{storage}', path: '/var/opt/gitlab/git-data/repositories' }}],
}}
"""


def test_docs_style_cluster_imports_as_the_lab_s_cluster(tmp_path: Path) -> None:
    """GitLab's Gitaly Cluster docs (praefect/configure.md): hosts by address, storages
    gitaly-1..3, the app's per-storage token; gitaly-3 holds another token, gitaly-2 another
    storage name: both mismatches survive, values never copied."""
    files = {"app.rb": DOCS_APP, "praefect.rb": DOCS_PRAEFECT,
             "gitaly-1.rb": docs_gitaly("gitaly-1"), "gitaly-2.rb": docs_gitaly("gitaly-two"),
             "gitaly-3.rb": docs_gitaly("gitaly-3", "SOMETHING_ELSE")}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    result = import_files(node_inputs(sorted(tmp_path.glob("*.rb")), []))
    check_importable(result)
    nodes = result.spec["nodes"]
    assert nodes["praefect"]["roles"] == ["praefect"]
    assert nodes["praefect"]["storages"] == ["default"]
    assert nodes["praefect"]["gitaly_nodes"] == ["gitaly-1", "gitaly-2", "gitaly-3"]
    assert nodes["praefect-db"] == {"roles": ["postgres"]}
    assert "gitaly_token" not in nodes["praefect"]  # the app sends what Praefect accepts
    assert "gitaly_token" not in nodes["gitaly-1"]
    assert nodes["gitaly-3"]["gitaly_token"] not in ("", "SOMETHING_ELSE")
    assert [s["name"] for s in nodes["gitaly-2"]["storages"]] == ["gitaly-two"]
    assert any("calls its storage 'gitaly-2'" in n for n in result.notes)
    text = result.to_yaml()
    for secret in ("PRAEFECT_EXTERNAL_TOKEN", "PRAEFECT_INTERNAL_TOKEN", "SOMETHING_ELSE",
                   "'PW'"):
        assert secret not in text
    lab = build_lab(result.spec, Origins())
    assert lab.storages["default"].name == "praefect"
    assert not result.unmapped, result.unmapped
