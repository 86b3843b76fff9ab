"""lab/omnibus: each release's rules, unknown keys, and reading gitlab.rb without running it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from lab.engine.images import SIM_CARRIES, SIM_PYTHONPATH, sim_context
from lab.errors import LabError, SpecError
from lab.omnibus import dialect, keys
from lab.omnibus.release import DEFAULT_VERSION, Version, newer_than_known
from lab.spec.importer import import_files, node_inputs
from lab.spec.rb_reader import read_rb

V = Version.parse
GUIDE_ERA = ROOT / "tests" / "data" / "guide-era"


def test_what_the_sim_image_carries_imports_what_the_image_has() -> None:
    # The standard library, labsim and the toolkit packages it carries, and the Debian
    # python3-X packages of the base image (images/base/packages.txt), by import name.
    # (The import contracts say the same for the toolkit's own dependencies.)
    debian = {line.split("#")[0].strip().removeprefix("python3-")
              for line in (ROOT / "images" / "base" / "packages.txt").read_text().splitlines()
              if line.strip().startswith("python3-")}
    import_names = {"grpcio": "grpc", "protobuf": "google", "jwt": "jwt", "psycopg2": "psycopg2"}
    assert debian == set(import_names)
    allowed = set(sys.stdlib_module_names) | {"labsim"} | set(import_names.values())
    carried = {f"lab.{name}" for name in SIM_CARRIES}
    python = [(name, path) for name, path in sim_context()
              if name.startswith(SIM_PYTHONPATH) and path.suffix == ".py"]
    assert len(python) > 20
    for name, path in python:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and
                       not node.level else
                       [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for module in modules:
                top = module.split(".")[0]
                if top == "lab":
                    assert ".".join(module.split(".")[:2]) in carried, (name, module)
                else:
                    assert top in allowed, (name, module)


def test_render_never_imports_the_engine() -> None:
    code = ("import sys, lab.store.labdir, lab.render.compose_file, lab.render.gitlab_rb, "
            "lab.render.secrets, lab.render.tls, lab.render.diagram; "
            "print([m for m in sys.modules if m.startswith('lab.engine')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("version", "disabled"), [
    ("11.11.8", ("unicorn", "grafana", "gitlab_monitor")),
    ("12.10.14", ("unicorn", "grafana", "gitlab_exporter")),
    ("13.12.15", ("unicorn", "puma", "grafana", "gitlab_exporter", "gitlab_kas")),
    ("19.3.0", ("puma", "gitlab_exporter", "gitlab_kas")),
])
def test_what_a_gitaly_node_disables(version: str, disabled: tuple[str, ...]) -> None:
    services = dialect.dialect_for(V(version)).gitaly_node_disabled()
    assert set(disabled) <= set(services)
    assert not {"unicorn", "puma", "grafana", "gitlab_monitor", "gitlab_exporter",
                "gitlab_kas"} - set(disabled) & set(services)


def test_newer_than_known_lets_patches_of_the_newest_release_through() -> None:
    newest = Version.parse(DEFAULT_VERSION)
    assert not newer_than_known(newest)
    assert not newer_than_known(Version(newest.major, newest.minor, newest.patch + 9))
    assert newer_than_known(Version(newest.major, newest.minor + 1, 0))
    assert newer_than_known(Version(newest.major + 1, 0, 0))
    assert not newer_than_known(Version.parse("11.11.8"))


def test_unknown_keys_in_the_release_words() -> None:
    settings = {"gitlab_monitor": {"enable": False}, "gitaly": {"no_such_key": 1}}
    found = [u.message(V("13.0.14")) for u in keys.unknown_settings(settings, V("13.0.14"))]
    assert found == ["`gitlab_monitor['enable']` is not a setting in 13.0: reconfigure aborts",
                     "`gitaly['no_such_key']` is not a setting in 13.0: Omnibus ignores it"]
    assert keys.unknown_settings({"gitlab_monitor": {"enable": False}}, V("12.10.14")) == []
    assert keys.unknown_settings({"gitlab_shell": {"secret_token": "x"}}, V("11.11.8")) == []
    own = {"gitaly": {"gitlab_secret": "x"}}  # 17.5 added it
    assert [u.key for u in keys.unknown_settings(own, V("17.4.9"))] == ["gitaly['gitlab_secret']"]
    assert keys.unknown_settings(own, V("17.5.0")) == []


def test_removals_and_conflicts_use_omnibus_words() -> None:
    gdd = {"git_data_dirs": {"default": {"gitaly_address": "tcp://g:8075"}}}
    assert dialect.removals(gdd, V("17.11.7")) == []
    assert dialect.removals(gdd, V("18.0.0")) == [
        "* git_data_dirs has been deprecated since 17.8 and was removed in 18.0. See "
        "https://docs.gitlab.com/omnibus/settings/configuration.html#migrating-from-git_data_dirs"
        " for migration instructions."]
    legacy = {"gitaly": {"listen_addr": "0.0.0.0:8075"}}
    assert dialect.removals(legacy, V("15.11.13")) == []
    assert dialect.removals(legacy, V("16.0.0"))[0].startswith(
        "* gitaly['listen_addr'] has been deprecated since 15.10 and was removed in 16.0.")
    both = {"gitaly": {"listen_addr": "a", "configuration": {"listen_addr": "b"}}}
    assert dialect.legacy_conflicts(both, V("15.10.0")) == [
        "Legacy configuration key 'listen_addr' can't be set when its new key "
        "'configuration.listen_addr' is set."]
    assert dialect.legacy_conflicts(both, V("15.9.8")) == []
    # One list for doctor (FAIL/WARN) and import (notes): the conflict aborts reconfigure.
    assert dialect.findings(both, V("15.10.0")) == [
        (True, "Legacy configuration key 'listen_addr' can't be set when its new key "
               "'configuration.listen_addr' is set. (reconfigure aborts)")]
    assert dialect.findings({"gitaly": {"no_such_key": 1}}, V("17.11.7")) == [
        (False, "`gitaly['no_such_key']` is not a setting in 17.11: Omnibus ignores it")]


def test_signing_secret_by_release_and_gitlab_rb_wins() -> None:
    secrets = {"gitlab_shell": {"secret_token": "shell"}, "gitaly": {"gitlab_secret": "own"}}
    empty = dialect.getter({})
    assert dialect.signing_secret(dialect.dialect_for(V("17.4.0")), secrets, empty) == "shell"
    assert dialect.signing_secret(dialect.dialect_for(V("17.5.0")), secrets, empty) == "own"
    rb = dialect.getter({"gitlab_shell": {"secret_token": "from-rb"}})
    assert dialect.signing_secret(dialect.dialect_for(V("16.11.10")), secrets, rb) == "from-rb"
    rb = dialect.getter({"gitaly": {"gitlab_secret": "rb-gitaly"}})
    assert dialect.signing_secret(dialect.dialect_for(V("19.3.0")), secrets, rb) == "rb-gitaly"


def test_guide_era_roles_in_their_release() -> None:
    text = (GUIDE_ERA / "gitaly-a.rb").read_text()
    settings = read_rb(GUIDE_ERA / "gitaly-a.rb").settings
    assert "unicorn['enable'] = false" in text
    get = dialect.getter(settings)
    assert not dialect.runs_app(get, dialect.dialect_for(V("12.10.14")))
    assert dialect.runs_app(get, dialect.dialect_for(V("13.0.0")))  # puma is the default


def test_guide_era_import_keeps_storages_and_paths() -> None:
    result = import_files(node_inputs([GUIDE_ERA / "app.rb", GUIDE_ERA / "gitaly-a.rb"], []))
    assert result.spec["version"] == "12.10.14"
    gitaly = result.spec["nodes"]["gitaly-a"]
    assert gitaly["roles"] == ["gitaly"]
    assert gitaly["storages"] == [{"name": "default", "path": "/srv/gitaly/default"},
                                  {"name": "archive", "path": "/srv/gitaly/archive"}]
    assert result.spec["nodes"]["app"]["roles"] == ["app"]
    assert not result.unknown


HOSTILE = [
    "system('touch {m}')",
    "`touch {m}`",
    "File.write('{m}', 'x')",
    "exit!",
    "loop {{ }}",
    "while true do end",
    "Kernel.exec('touch {m}')",
    "at_exit {{ File.write('{m}', 'x') }}",
]


@pytest.mark.parametrize("line", HOSTILE)
def test_import_never_runs_the_file(tmp_path: Path, line: str) -> None:
    marker = tmp_path / "marker"
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://x'\n" + line.format(m=marker) + "\n")
    started = time.monotonic()
    read = read_rb(rb)
    assert time.monotonic() - started < 10
    assert read.settings == {"external_url": "http://x"}
    assert [n for n, _ in read.skipped] == [2]
    result = import_files([("gitlab", rb)])
    assert any("line 2:" in u and "Ruby code" in u for u in result.unmapped)
    assert not marker.exists()


def lab_cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-c", "from lab.cli.main import main; main()", *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_cli_import_of_a_hostile_file_is_bad_input(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    rb = tmp_path / "gitlab.rb"
    body = "\n".join(line.format(m=marker) for line in HOSTILE)
    rb.write_text("external_url 'http://x'\n" + body + "\nend\n")
    out = lab_cli("import", str(rb))
    assert out.returncode == 2, out.stderr  # the README's "bad input"
    assert f"{rb}:{len(HOSTILE) + 2}" in out.stderr
    assert "Traceback" not in out.stderr
    assert not marker.exists()
    # Without ruby on the host: a clear error, the missing tool's own exit code, nothing run.
    rb.write_text("external_url 'http://x'\n")
    out = lab_cli("import", str(rb), path=str(tmp_path))
    assert out.returncode == 5, out.stderr  # the README's "a host tool is not installed"
    assert "apt-get install ruby" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_error_keeps_a_long_path_and_its_line_on_one_line(tmp_path: Path) -> None:
    # Rich wrapped errors at 80 columns, splitting "<path>:<line>" where a temp path is long.
    deep = tmp_path / ("d" * 90)
    deep.mkdir()
    rb = deep / "gitlab.rb"
    rb.write_text("external_url 'http://x'\nfoo(\n")
    out = lab_cli("import", str(rb))
    assert out.returncode == 2, out.stderr
    assert f"{rb}:2: not valid Ruby" in out.stderr


@pytest.mark.parametrize("line", HOSTILE)
def test_doctor_reads_hostile_files_without_running_them(tmp_path: Path, line: str) -> None:
    from lab.support.doctor.checks import config_checks
    from lab.support.doctor.facts import NodeFacts
    from lab.support.doctor.gather import read_config

    marker = tmp_path / "marker"
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://x'\ngitlab_monitor['enable'] = false\n"
                  + line.format(m=marker) + "\n")
    err, findings, code = read_config(tmp_path, "gitlab.rb", "", V("13.0.14"))
    assert err is None
    assert findings == ((True, "`gitlab_monitor['enable']` is not a setting in 13.0: "
                         "reconfigure aborts"),)
    assert [n for n, _ in code] == [3]
    checks = config_checks([NodeFacts("gitlab", "running", findings=findings, code=code)])
    assert [c.level.value for c in checks] == ["OK", "FAIL", "WARN"]
    assert not marker.exists()


def test_missing_ruby_is_a_clear_error(tmp_path: Path) -> None:
    rb = tmp_path / "gitlab.rb"
    rb.write_text("external_url 'http://x'\n")
    with pytest.raises(LabError, match="apt-get install ruby"):
        read_rb(rb, ruby="no-such-ruby-here")
    big = tmp_path / "big.rb"
    big.write_text("#" * (2 * 1024 * 1024))
    with pytest.raises(SpecError, match="larger than"):
        read_rb(big)


@pytest.mark.parametrize(("version", "ci_jwt", "ar_encryption", "root_password"), [
    ("13.12.15", True, False, False), ("14.0.0", True, False, True),
    ("17.4.7", True, False, True), ("17.5.0", False, False, True),
    ("17.7.7", False, False, True), ("17.8.0", False, True, True),
])
def test_what_reconfigure_generates_per_release(version: str, ci_jwt: bool,
                                                ar_encryption: bool, root_password: bool) -> None:
    d = dialect.dialect_for(V(version))
    assert (d.ci_jwt_signing_key, d.active_record_encryption, d.initial_root_password) == (
        ci_jwt, ar_encryption, root_password)
