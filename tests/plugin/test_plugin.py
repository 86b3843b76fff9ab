"""The pytest plugin, tested with pytester: collection, evidence, overrides, teardown."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

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

from lab.scenario.runner import LabPool


class FakeLab:
    http_url = "http://127.0.0.1:9"
    admin_token = "glpat-fake-token-0123456789"

    def __init__(self, lab, path):
        self.lab, self.name, self.path = lab, lab.name, path
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
            from lab.spec import SpecRequest, resolve
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


def test_no_docker_skips_or_fails_with_no_skip(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(textwrap.dedent('''
        import pytest
        import lab.engine.images as images
        from lab.errors import DockerUnavailable

        @pytest.fixture(autouse=True, scope="session")
        def _no_docker():
            def boom():
                raise DockerUnavailable("Docker is not reachable: start the Docker Engine")
            # pytester runs in this process: the outer session must get Docker back.
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(images, "check_docker", boom)
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
        from lab.spec import SpecRequest, resolve

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
    from lab.scenario.load import group_name
    from lab.spec import SpecRequest, resolve

    name = group_name(resolve(SpecRequest(topology="scaled", version="17.11.7")))
    pytester.runpytest("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert _containers(name) == []
    try:
        pytester.runpytest("-q", "--lab-keep").assert_outcomes(passed=1)
        assert _containers(name)
    finally:
        from lab import lifecycle

        if _containers(name):
            lifecycle.attach(name).down(purge=True)
