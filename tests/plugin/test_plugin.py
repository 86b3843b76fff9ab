"""The pytest plugin, tested with pytester: collection, evidence, overrides, teardown."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def this_checkout_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interpreters these tests start import ``lab`` from this checkout. The plugin's entry
    point comes from whatever install of the package the machine has, which may be
    another checkout (or a deleted one): that would be the code under test otherwise."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))

SCENARIO = """\
description: the API answers
lab: {topology: scaled}
steps:
  - api: /api/v4/user
"""

# A conftest that replaces Docker with a fake lab whose HTTP port answers nothing,
# by overriding the plugin's fixtures (which is what users do, too).
FAKE_CONFTEST = '''
import json
from types import SimpleNamespace

import pytest

from lab.engine.run import Redactor
from lab.scenario.pool import LabPool


class FakeLab:
    http_url = "http://127.0.0.1:9"
    admin_token = "glpat-fake-token-0123456789"

    def __init__(self, lab, path):
        self.lab, self.name, self.path = lab, lab.name, path
        self.redactor = Redactor()
        path.mkdir(parents=True, exist_ok=True)
        nodes = {n.name: {"secrets_policy": n.secrets.value,
                          "shell_secret_sha256": "sha256:" + ("a" if n.is_app else "b") * 8}
                 for n in lab.nodes}
        (path / "manifest.json").write_text(json.dumps({"nodes": nodes}))

    def logs(self, node, tail=200, since=None):
        # Echoes the admin token, as a verbose request log might: it must not reach a report.
        return f"{node}: boom error happened for PRIVATE-TOKEN {self.admin_token}"

    def apply(self, lab, **kw):
        self.lab = lab
        return []

    def down(self, purge=False):
        pass


@pytest.fixture(scope="session")
def docker_available():
    return None


@pytest.fixture(scope="session")
def lab_pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    with LabPool(up=lambda lab: FakeLab(lab, root / lab.name)) as pool:
        yield pool
'''


def test_scenario_files_are_collected_with_readable_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scenarios/api-answers": SCENARIO})
    pytester.makefile(".yaml", **{"config/other": "not: a scenario\n"})
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["scenarios/api-answers.yaml::api-answers", "1 test collected*"])


def test_an_explicit_path_is_collected_anywhere(pytester: pytest.Pytester) -> None:
    path = pytester.makefile(".yaml", mine=SCENARIO)
    result = pytester.runpytest("--collect-only", "-q", str(path))
    result.stdout.fnmatch_lines(["mine.yaml::mine"])


def test_only_the_configured_folders_are_scenarios(pytester: pytest.Pytester) -> None:
    # Another project's YAML under some scenarios/ folder is not ours to run.
    pytester.makefile(".yaml", **{"scenarios/top": SCENARIO, "docs/scenarios/other": SCENARIO,
                                  "suite/cases/mine": SCENARIO})
    result = pytester.runpytest("--collect-only", "-q")
    ids = [ln for ln in result.stdout.lines if "::" in ln]
    assert ids == ["scenarios/top.yaml::top"]
    pytester.makeini("[pytest]\nlab_scenarios =\n    suite/cases\n")
    result = pytester.runpytest("--collect-only", "-q")
    ids = [ln for ln in result.stdout.lines if "::" in ln]
    assert ids == ["suite/cases/mine.yaml::mine"]


def test_a_folder_named_on_the_command_line_collects_its_scenarios(
        pytester: pytest.Pytester) -> None:
    # `pytest checks/` on a folder not called scenarios: its scenario files, not other YAML.
    pytester.makefile(".yaml", **{"checks/mine": SCENARIO, "checks/sub/deep": SCENARIO,
                                  "checks/ci": "stages: [test]\n"})
    result = pytester.runpytest("--collect-only", "-q", "checks")
    ids = sorted(ln for ln in result.stdout.lines if "::" in ln)
    assert ids == ["checks/mine.yaml::mine", "checks/sub/deep.yaml::deep"]
    assert result.ret == 0


def test_importing_the_plugin_leaves_heavy_libraries_out(tmp_path: Path) -> None:
    # A fresh interpreter: this one has them all loaded already.
    heavy = ("requests", "yaml", "rich", "cryptography", "docker", "grpc")
    code = ("import sys, lab.pytest_plugin\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    # And the same for a whole pytest run of a project that uses no lab.
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    pass\n")
    code = ("import sys, pytest\n"
            "code = pytest.main(['-q', '-p', 'no:cacheprovider'])\n"
            "print(int(code), 'lab.pytest_plugin' in sys.modules,\n"
            f"      sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=tmp_path).stdout
    # The plugin is loaded through its entry point, as in any project that installs it.
    assert out.strip().splitlines()[-1] == "0 True []"


def test_a_bad_scenario_is_a_collection_error_naming_file_line_key(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scenarios/bad": SCENARIO + "  - pushh: p1\n"})
    result = pytester.runpytest("-q")
    result.stdout.fnmatch_lines(["*scenarios/bad.yaml:5: steps.1.pushh: unknown step 'pushh'*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_scenarios_get_markers_and_flavour_skips(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scenarios/omni": "flavors: [omnibus]\n" + SCENARIO})
    result = pytester.runpytest("-q", "-m", "docker and slow and sim", "-rs")
    result.stdout.fnmatch_lines(["*scenario is for omnibus only; this run uses --lab-flavor sim*"])
    assert pytester.runpytest("-q", "-m", "not docker").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_failing_scenario_reports_its_evidence(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makefile(".yaml", **{"scenarios/api-answers": SCENARIO})
    result = pytester.runpytest("-q")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*scenario api-answers (*api-answers.yaml) failed on lab sc-scaled-sim-*",
        "*FAIL api(path=/api/v4/user)*",
        "step:        api(path=/api/v4/user)*api-answers.yaml:4)",
        "expected:    success",
        "problem:     expected success, but the step failed",
        "output:",
        "    no answer from http://127.0.0.1:9/api/v4/user*",
        "per-node config (hashes from manifest.json; * = differs between nodes):",
        "  * shell_secret_sha256    gitaly1=sha256:bbbbbbbb  gitlab=sha256:aaaaaaaa",
        "log of gitlab (relevant lines since the scenario started):",
        "    gitlab: boom error happened for PRIVATE-TOKEN [REDACTED]",
    ])
    assert "glpat-fake-token" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_scenarios_run_lab_by_lab_keeping_their_slots(pytester: pytest.Pytester) -> None:
    # Files collect alphabetically: b (TLS lab) sits between a and c (plain lab), and
    # test_z (not a scenario) keeps its place after them.
    tls = SCENARIO.replace("lab: {topology: scaled}",
                           "lab:\n  topology: scaled\n  set: {nodes.gitaly1.tls: true}")
    pytester.makefile(".yaml", **{"scenarios/a-plain": SCENARIO, "scenarios/b-tls": tls,
                                  "scenarios/c-plain": SCENARIO, "scenarios/d-tls": tls})
    pytester.makepyfile(test_z="def test_z():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q")
    ids = [ln for ln in result.stdout.lines if "::" in ln]
    assert ids == ["scenarios/a-plain.yaml::a-plain", "scenarios/c-plain.yaml::c-plain",
                   "scenarios/b-tls.yaml::b-tls", "scenarios/d-tls.yaml::d-tls",
                   "test_z.py::test_z"]


def test_fixtures_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST + textwrap.dedent('''
        @pytest.fixture
        def lab_spec(lab_flavor):
            from lab.spec.labspec import SpecRequest, resolve
            return resolve(SpecRequest(topology="sharded", flavor=lab_flavor))
    '''))
    pytester.makepyfile(textwrap.dedent('''
        def test_uses_overrides(lab, gitlab, gitlab_client):
            assert {n.name for n in lab.lab.nodes} == {"gitlab", "gitaly1", "gitaly2"}
            assert lab.name.startswith("sc-sharded-sim-")
            assert gitlab.api.base_url == "http://127.0.0.1:9"
            assert gitlab_client is gitlab

        def test_factory_applies_sets(lab_factory):
            lab = lab_factory("scaled", sets=["nodes.gitaly1.secrets=own"])
            assert lab.lab.node("gitaly1").secrets.value == "own"
            assert lab_factory("scaled").lab.node("gitaly1").secrets.value == "shared"
    '''))
    pytester.runpytest("-q").assert_outcomes(passed=2)


def test_a_flavour_fixture_override_skips_scenarios_not_for_that_flavour(
        pytester: pytest.Pytester) -> None:
    # The plan skips by --lab-flavor; a conftest's lab_flavor must not run a scenario
    # on a flavour it says it cannot be reproduced on.
    pytester.makeconftest(FAKE_CONFTEST + textwrap.dedent('''
        @pytest.fixture(scope="session")
        def lab_flavor():
            return "omnibus"

        @pytest.fixture(scope="session")
        def lab_image_check():
            return lambda lab: None
    '''))
    pytester.makefile(".yaml", **{"scenarios/sim-only": "flavors: [sim]\n" + SCENARIO})
    result = pytester.runpytest("-q", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*scenario is for sim only; the lab_flavor fixture gives "
                                 "omnibus*"])


def test_a_bad_lab_factory_request_fails_the_test_without_a_traceback(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(textwrap.dedent('''
        def test_topology(lab_factory):
            lab_factory("nosuch")

        def test_set(lab_factory):
            lab_factory("scaled", sets=["nodes.gitaly9.tls=true"])
    '''))
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*lab_factory('nosuch'): *unknown topology 'nosuch'; known topologies: *",
        "*lab_factory('scaled', sets=?'nodes.gitaly9.tls=true'?): *every node needs roles*"])
    assert "labspec.py" not in result.stdout.str()


def test_no_docker_skips_or_fails_with_no_skip(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(textwrap.dedent('''
        import pytest
        import lab.engine.image_catalogue as image_catalogue
        from lab.errors import DockerUnavailable

        @pytest.fixture(autouse=True, scope="session")
        def _no_docker():
            def boom():
                raise DockerUnavailable("Docker is not reachable: start the Docker Engine")
            # pytester runs in this process: the outer session must get Docker back.
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(image_catalogue, "check_docker", boom)
                yield
    '''))
    pytester.makepyfile("def test_x(lab):\n    pass\n")
    result = pytester.runpytest("-q", "-rs")
    result.stdout.fnmatch_lines(["*SKIPPED*Docker is not reachable*"])
    result = pytester.runpytest("-q", "--lab-no-skip")
    result.stdout.fnmatch_lines(["*Docker is not reachable*--lab-no-skip*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-q")
    result.stdout.fnmatch_lines(["*Docker is not reachable*CI=true*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def _containers(name_prefix: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", "label=io.gitlab-testlab.lab",
                          "--format", "{{.Label \"io.gitlab-testlab.lab\"}}"],
                         capture_output=True, text=True, check=True).stdout
    return [x for x in out.split() if x.startswith(name_prefix)]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.sim
def test_labs_are_gone_after_the_session_unless_kept(pytester: pytest.Pytester,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import skip_or_fail

    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        skip_or_fail("no Docker Engine")
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    pytester.makeconftest(textwrap.dedent('''
        import pytest
        from lab.spec.labspec import SpecRequest, resolve

        @pytest.fixture
        def lab_spec(lab_flavor):
            # A version no other test uses: its own lab name, so no other lab is touched.
            return resolve(SpecRequest(topology="scaled", flavor=lab_flavor,
                                       version="17.11.7"))
    '''))
    pytester.makepyfile(textwrap.dedent('''
        def test_push(lab, gitlab):
            project = gitlab.api.create_project("p1")
            assert gitlab.git.push(project["path_with_namespace"], {"a": "b"}).ok
    '''))
    from lab.scenario.pool import group_name
    from lab.spec.labspec import SpecRequest, resolve

    name = group_name(resolve(SpecRequest(topology="scaled", version="17.11.7")))
    pytester.runpytest("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert _containers(name) == []
    try:
        pytester.runpytest("-q", "--lab-keep").assert_outcomes(passed=1)
        assert _containers(name)
    finally:
        from lab.lifecycle import handle
        if _containers(name):
            handle.attach(name).down(purge=True)


PINNED = SCENARIO.replace("lab: {topology: scaled}", "lab: {topology: scaled, version: '16.11.10'}")


def test_a_release_matrix_makes_an_item_per_release(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", **{"scenarios/a-free": SCENARIO, "scenarios/b-pinned": PINNED})
    pytester.makepyfile(test_v="def test_v(lab_version):\n    assert lab_version\n")
    result = pytester.runpytest("--collect-only", "-q", "--lab-version", "15.9.8,19.3.0")
    ids = [ln for ln in result.stdout.lines if "::" in ln]
    assert ids == ["scenarios/a-free.yaml::a-free[15.9.8]",
                   "scenarios/a-free.yaml::a-free[19.3.0]",
                   "scenarios/b-pinned.yaml::b-pinned",  # pins its version: once
                   "test_v.py::test_v[15.9.8]", "test_v.py::test_v[19.3.0]"]
    bad = pytester.runpytest("--collect-only", "-q", "--lab-version", "15.9.8,19")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--lab-version: '19' is not a GitLab version*"])


def test_a_release_the_toolkit_cannot_render_is_a_usage_error(pytester: pytest.Pytester) -> None:
    # Not a collection error in every scenario file (naming `lab run`'s --version and
    # --force-version, which pytest has not), nor a SpecError traceback from lab_spec.
    pytester.makefile(".yaml", **{"scenarios/a": SCENARIO, "scenarios/b": SCENARIO})
    pytester.makepyfile(test_v="def test_v(lab_spec):\n    pass\n")
    for value, problem in (("19.3.0,99.0.0", "newer than the newest release*(19.3.0)"),
                           ("11.0.0", "older than the oldest supported release 11.11.0")):
        result = pytester.runpytest("-q", "--lab-version", value)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: --lab-version: GitLab *{problem}*"])
        assert "force-version" not in result.stderr.str()


def test_a_matrix_runs_each_release_on_its_own_lab(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST + textwrap.dedent('''
        SEEN = []

        @pytest.fixture(autouse=True)
        def _record(request, lab_pool):
            yield
            SEEN.extend((n, str(lab_pool._labs[n][0].lab.version)) for n in lab_pool.names())

        def pytest_sessionfinish(session):
            print("labs:", sorted(set(SEEN)))
    '''))
    pytester.makefile(".yaml", **{"scenarios/a-free": SCENARIO})
    result = pytester.runpytest("-q", "-s", "--lab-version", "15.9.8,17.11.7",
                                "--junitxml", "out.xml")
    result.assert_outcomes(failed=2)  # the fake lab answers nothing
    result.stdout.fnmatch_lines(["*scenario a-free (*) failed on lab sc-scaled-sim-* "
                                 "(GitLab 15.9.8)*"])
    xml = (pytester.path / "out.xml").read_text()
    assert 'name="a-free[15.9.8]"' in xml
    assert 'name="a-free[17.11.7]"' in xml


def test_the_controller_finds_each_items_lab_from_its_node_id(
        pytester: pytest.Pytester) -> None:
    tls = SCENARIO.replace("lab: {topology: scaled}",
                           "lab:\n  topology: scaled\n  set: {nodes.gitaly1.tls: true}")
    pytester.makefile(".yaml", **{"scenarios/a-plain": SCENARIO, "scenarios/b-tls": tls,
                                  "scenarios/c-plain": SCENARIO})
    pytester.makeconftest(textwrap.dedent('''
        from lab.pytest_plugin import scenario_group

        def pytest_collection_finish(session):
            for item in session.items:
                group = scenario_group(session.config, item.nodeid)
                print("group", item.name, group == getattr(item, "group", None), group)
    '''))
    pytester.makepyfile(test_z="def test_z():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "-s", "--lab-version", "15.9.8,19.3.0")
    lines = [ln.split() for ln in result.stdout.lines if ln.startswith("group ")]
    # The TLS lab is the plain one with TLS applied (one lab family): its scenario runs on
    # the plain lab of its release, after the plain scenarios.
    assert [ln[:3] for ln in lines] == [
        ["group", "a-plain[15.9.8]", "True"], ["group", "c-plain[15.9.8]", "True"],
        ["group", "b-tls[15.9.8]", "True"],
        ["group", "a-plain[19.3.0]", "True"], ["group", "c-plain[19.3.0]", "True"],
        ["group", "b-tls[19.3.0]", "True"],
        ["group", "test_z", "True"]]
    assert lines[6][3] == "None"  # not a scenario: xdist spreads it like any test
    assert len({ln[3] for ln in lines[:3]}) == len({ln[3] for ln in lines[3:6]}) == 1
    assert len({ln[3] for ln in lines[:6]}) == 2  # one lab per release


def _boots(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
           scenarios: dict[str, str], workers: int) -> list[list[str]]:
    """Run ``scenarios`` (file stem -> text) on fake labs under ``-n workers``; each boot
    as [lab name, topology, xdist worker], in the order they happened."""
    pytester.makeconftest(FAKE_CONFTEST.replace(
        "    def __init__(self, lab, path):\n",
        "    def __init__(self, lab, path):\n"
        "        import os\n"
        "        with open(os.environ['BOOTS'], 'a') as f:\n"
        "            f.write(f\"{lab.name} {lab.topology} "
        "{os.environ.get('PYTEST_XDIST_WORKER')}\\n\")\n"))
    pytester.makefile(".yaml", **{f"scenarios/{n}": text for n, text in scenarios.items()})
    boots = pytester.path / "boots.txt"
    monkeypatch.setenv("BOOTS", str(boots))
    result = pytester.runpytest_subprocess("-q", "-n", str(workers), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=len(scenarios))
    return [line.split() for line in boots.read_text().splitlines()]


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_workers_split_labs_and_never_boot_one_twice(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Another release: another lab (one of another family, not a state of the first).
    pinned = SCENARIO.replace("lab: {topology: scaled}",
                              "lab:\n  topology: scaled\n  version: '16.11.10'")
    boots = _boots(pytester, monkeypatch,
                   {n: (pinned if "pinned" in n else SCENARIO)
                    for n in ("a-plain", "b-pinned", "c-plain", "d-pinned")}, workers=2)
    labs = [name for name, _, _ in boots]
    assert len(labs) == 2  # each lab booted once
    assert len(set(labs)) == 2
    assert {worker for _, _, worker in boots} == {"gw0", "gw1"}  # side by side


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_workers_take_the_biggest_lab_first(pytester: pytest.Pytester,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """xdist's own order would start the group with the most items (three scaled
    scenarios); plan order starts the cluster, the longest to run."""
    cluster = SCENARIO.replace("lab: {topology: scaled}", "lab: {topology: cluster}")
    boots = _boots(pytester, monkeypatch,
                   {n: (cluster if "cluster" in n else SCENARIO)
                    for n in ("a-plain", "b-plain", "c-plain", "d-cluster")}, workers=1)
    assert [topology for _, topology, _ in boots] == ["cluster", "scaled"]


def test_collect_on_failure_puts_the_bundle_in_report_and_junit(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST + textwrap.dedent('''
        import lab.support.collect

        @pytest.fixture(autouse=True, scope="session")
        def _fake_collect():
            def collect(handle, out):
                out.write_text(f"bundle of {handle.name}")
                return out
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(lab.support.collect, "collect", collect)
                yield
    '''))
    pytester.makefile(".yaml", **{"scenarios/api-answers": SCENARIO})
    result = pytester.runpytest("-q", "--lab-collect-on-failure", "--lab-evidence-dir", "ev",
                                "--junitxml", "out.xml")
    result.assert_outcomes(failed=1)
    (bundle,) = (pytester.path / "ev").glob("api-answers-*.tar.gz")
    assert bundle.read_text().startswith("bundle of sc-scaled-sim-")
    result.stdout.fnmatch_lines([f"evidence bundle of the failed lab (lab collect): {bundle}"])
    assert f'<property name="lab_collect_bundle" value="{bundle}" />' in \
        (pytester.path / "out.xml").read_text()
    # Without the option nothing is written.
    pytester.runpytest("-q", "--lab-evidence-dir", "ev2").assert_outcomes(failed=1)
    assert not (pytester.path / "ev2").exists()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_junitxml_classname_is_the_relative_one_lab_run_writes(
        pytester: pytest.Pytester, workers: list[str]) -> None:
    if workers and importlib.util.find_spec("xdist") is None:
        pytest.skip("needs pytest-xdist")
    import xml.etree.ElementTree as ET

    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makefile(".yaml", **{"scenarios/tls-push": SCENARIO,
                                  "checks/v1.2/api-answers": SCENARIO})
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *workers,
                                           "scenarios", "checks", "test_plain.py",
                                           "--junitxml", "out.xml")
    result.assert_outcomes(failed=2, passed=1)  # the fake lab answers nothing
    cases = {c.get("name"): c.get("classname")
             for c in ET.parse(pytester.path / "out.xml").iter("testcase")}
    # As `lab run --junit` writes them: relative, no suffix, no dots.
    assert cases == {"tls-push": "scenarios/tls-push", "api-answers": "checks/v1_2/api-answers",
                     "test_plain": "test_plain"}
