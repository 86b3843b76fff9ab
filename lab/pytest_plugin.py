"""pytest plugin: scenario YAML files as test items, and lab fixtures users can override.

Fixtures (all overridable in a conftest.py):

- ``lab_flavor`` / ``lab_version`` / ``lab_engine`` (session): from ``--lab-flavor`` /
  ``--lab-version`` / ``--lab-engine``.
- ``docker_available`` (session): skips without Docker (fails with ``--lab-no-skip`` or CI=true).
- ``lab_image_check`` (session): a callable that skips when an omnibus image is missing.
- ``lab_collect`` (session): how a failed scenario's lab is bundled (``--lab-collect-on-failure``).
- ``lab_pool`` (session): the running labs, one per topology; torn down at the end
  unless ``--lab-keep``.
- ``lab_factory`` (session): ``lab_factory("scaled", sets=["nodes.gitaly1.tls=true"])``
  -> a ready lab in exactly that state.
- ``lab_spec`` (function): the ``Lab`` the ``lab`` fixture boots (default: scaled).
- ``lab`` (function): the ready lab for ``lab_spec``; shared per session and topology.
- ``gitlab`` / ``gitlab_client`` (function): API client and git helper bound to ``lab``.

Scenario files are planned as `lab run` plans them (``lab.scenario.plan``): each
file's plan items become test items, ordered lab by lab. Only files under the
``lab_scenarios`` ini folders (default: ``scenarios`` at the rootdir) or named on
the command line are collected. Nothing here touches Docker at import or
collection time, and the heavy libraries (requests, yaml, rich, cryptography,
docker, grpc) are imported only when a scenario file or a lab is used.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lab.errors import LabError, SpecError
from lab.model.topology import Engine, Flavor, Lab
from lab.scenario.releases import parse_versions

if TYPE_CHECKING:
    from lab.client.gitlab import GitLab
    from lab.lifecycle.contract import LabHandle
    from lab.scenario.evidence import CollectFn
    from lab.scenario.plan import PlanItem
    from lab.scenario.pool import LabPool
    from lab.scenario.results import ScenarioResult

MARKERS = {
    "omnibus": "needs a real gitlab/gitlab-ce or gitlab/gitlab-ee image",
    "sim": "runs against the offline sim flavour",
    "slow": "takes more than a few seconds (boots a lab)",
    "docker": "needs a reachable Docker Engine",
}
DEFAULT_TOPOLOGY = "scaled"
#: The ini option naming the folders whose YAML files are scenarios.
SCENARIOS_INI = "lab_scenarios"
IMAGE_WARNINGS = pytest.StashKey[list[str]]()
# Omnibus nodes need 4+ GB each: keep few labs up at once (scenarios are ordered by lab).
MAX_LABS = 2

LabFactory = Callable[..., "LabHandle"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gitlab-testlab")
    group.addoption("--lab-flavor", choices=[f.value for f in Flavor], default="sim",
                    help="omnibus = real GitLab images; sim = the offline stand-in (default).")
    group.addoption("--lab-engine", choices=[e.value for e in Engine], default="compose",
                    help="compose = Docker Compose (default); swarm = labs as stacks on the "
                         "swarm of this engine's manager.")
    group.addoption("--lab-version", metavar="X.Y.Z[,X.Y.Z…]", default=None,
                    help="GitLab version for labs and scenarios that do not pin one; a comma "
                         "list runs each such scenario (and test using lab_version) per release.")
    group.addoption("--lab-keep", action="store_true",
                    help="Leave labs up after the session (a later session reuses them).")
    group.addoption("--lab-collect-on-failure", action="store_true",
                    help="When a scenario fails, write a `lab collect` bundle of its lab in "
                         "the failed state (path in the report and as JUnit property "
                         "lab_collect_bundle).")
    group.addoption("--lab-evidence-dir", metavar="DIR", default="lab-evidence",
                    help="Where --lab-collect-on-failure writes bundles (default: %(default)s).")
    group.addoption("--lab-no-skip", action="store_true",
                    help="Fail instead of skipping when Docker or an image is missing "
                         "(CI=true does this for Docker and the sim image).")
    parser.addini(SCENARIOS_INI, type="linelist", default=["scenarios"],
                  help="Folders (relative to the rootdir) whose *.yaml / *.yml files are "
                       "gitlab-testlab scenarios (default: scenarios). A YAML file named on "
                       "the command line is collected wherever it is.")


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    try:
        releases(config)
    except ValueError as exc:
        raise pytest.UsageError(f"--lab-version: {exc}") from None
    config.pluginmanager.register(JUnitClassnames(config), "gitlab-testlab-junit")


def releases(config: pytest.Config) -> list[str | None]:
    """The --lab-version matrix: releases in order (``[None]``: the default release)."""
    return parse_versions(config.getoption("--lab-version"))


# --- the plan of each scenario file ----------------------------------------------------

_plans = pytest.StashKey[dict[Path, list["PlanItem"]]]()


def plan_file(config: pytest.Config, path: Path) -> list[PlanItem]:
    """A scenario file's plan items for this session's flavour and release matrix.

    Made once per file and process: collection and the xdist controller share it.
    """
    from lab.scenario.load import parse_scenario_file
    from lab.scenario.plan import expand

    plans = config.stash.setdefault(_plans, {})
    if path not in plans:
        plans[path] = expand(parse_scenario_file(path),
                             flavor=str(config.getoption("--lab-flavor")),
                             releases=releases(config),
                             engine=str(config.getoption("--lab-engine")))
    return plans[path]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` (pytest-xdist): its default ``load``, but a scenario group stays on one worker,
    and the groups are handed out in plan order.

    So a lab boots once and the groups run side by side, each big lab beside a small one
    (``lab.scenario.plan.order``). (xdist's own ``loadgroup`` no longer regroups items
    since pytest 9.2 made node ids immutable; the controller sees node ids only, so it
    plans the scenario file itself.)
    """
    if config.getvalue("dist") != "load":
        return None  # the user chose a distribution mode
    from xdist.scheduler import LoadScopeScheduling

    class LabGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scenario_group(config, nodeid) or nodeid

        def schedule(self) -> None:
            # Groups in collection order, which is plan order (the biggest labs first, each
            # beside a small one), not xdist's default of the groups with the most items first.
            self.config.option.loadscopereorder = False
            super().schedule()

    return LabGroupScheduling(config, log)


def scenario_group(config: pytest.Config, nodeid: str) -> str | None:
    """The lab a scenario item's node id runs on, or None (not a scenario, skipped)."""
    path, _, name = nodeid.partition("::")
    if not path.endswith((".yaml", ".yml")) or not name:
        return None
    try:
        items = plan_file(config, config.rootpath / path)
    except LabError:
        return None
    return next((item.group or None for item in items if item.name == name), None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """In a release matrix, every test that uses ``lab_version`` runs once per release."""
    matrix = releases(metafunc.config)
    if len(matrix) > 1 and "lab_version" in metafunc.fixturenames:
        metafunc.parametrize("lab_version", matrix, ids=[str(r) for r in matrix],
                             scope="session")


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def lab_flavor(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--lab-flavor"))


@pytest.fixture(scope="session")
def lab_engine(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--lab-engine"))


@pytest.fixture(scope="session")
def lab_version(pytestconfig: pytest.Config) -> str | None:
    # A matrix parametrizes this name instead (pytest_generate_tests).
    return releases(pytestconfig)[0]


def _missing(config: pytest.Config, reason: str, *, in_ci: bool = True) -> None:
    """Skip, or fail with --lab-no-skip; CI=true counts as --lab-no-skip when ``in_ci``.

    CI builds the sim image and has Docker, so their absence there is a broken job;
    an Omnibus image is never there, so its absence stays a skip unless asked.
    """
    if config.getoption("--lab-no-skip"):
        pytest.fail(reason + " (--lab-no-skip turns this skip into a failure)", pytrace=False)
    if in_ci and os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true turns this skip into a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_available(pytestconfig: pytest.Config) -> None:
    from lab.engine.image_catalogue import check_docker

    try:
        check_docker()
    except LabError as exc:
        _missing(pytestconfig, str(exc).splitlines()[0])


@pytest.fixture(scope="session")
def lab_image_check(pytestconfig: pytest.Config, docker_available: None
                    ) -> Callable[[Lab], None]:
    """Skip when a lab's omnibus image is not here (the sim image is built on demand)."""
    from lab.engine.image_catalogue import image_exists
    from lab.engine.images import image_for
    from lab.lifecycle.lab_image import sim_posing

    seen: dict[str, bool] = {}

    def check(lab: Lab) -> None:
        if lab.flavor is not Flavor.OMNIBUS:
            return
        image = image_for(lab)
        if image not in seen:
            seen[image] = image_exists(image)
            # The sim tagged as GitLab (CI does it on purpose): said in the run's summary.
            posing = sim_posing(lab, image) if seen[image] else ""
            if posing:
                pytestconfig.stash.setdefault(IMAGE_WARNINGS, []).append(posing)
        if not seen[image]:
            _missing(pytestconfig, f"image {image} is not present locally: `docker pull "
                     f"{image}` or `lab images load FILE.tar`", in_ci=False)

    return check


@pytest.fixture(scope="session")
def lab_pool(pytestconfig: pytest.Config, docker_available: None) -> Iterator[LabPool]:
    from lab.scenario.pool import LabPool
    from lab.store.ownership import keep_lab
    from lab.store.state import LabClaim

    with LabPool(leave_at_base=bool(pytestconfig.getoption("--lab-keep")), max_labs=MAX_LABS,
                 claim=LabClaim, on_kept=keep_lab) as pool:
        yield pool


@pytest.fixture(scope="session")
def lab_collect(pytestconfig: pytest.Config) -> CollectFn | None:
    """What a failed scenario's lab is bundled with (None: not at all)."""
    if not pytestconfig.getoption("--lab-collect-on-failure"):
        return None
    from lab.scenario.evidence import bundle_collector

    return bundle_collector(Path(str(pytestconfig.getoption("--lab-evidence-dir"))))


def _shared_name(lab: Lab) -> Lab:
    from lab.scenario.pool import group_name

    # The same name scenarios use for the same lab, so tests and scenarios share it.
    return dataclasses.replace(lab, name=group_name(lab))


@pytest.fixture(scope="session")
def lab_factory(lab_pool: LabPool, lab_flavor: str, lab_version: str | None,
                lab_image_check: Callable[[Lab], None], lab_engine: str) -> LabFactory:
    from lab.spec.labspec import SpecRequest, resolve

    def factory(spec: str | Lab = DEFAULT_TOPOLOGY, *, sets: Sequence[str] = ()) -> LabHandle:
        if isinstance(spec, Lab):
            base, target = spec, spec
        else:
            req = SpecRequest(topology=spec, flavor=lab_flavor, version=lab_version,
                              engine=lab_engine)
            try:
                base = resolve(req)
                target = resolve(dataclasses.replace(req, sets=tuple(sets))) if sets else base
            except SpecError as exc:
                problem = str(exc)
            else:
                problem = ""
            if problem:
                # The test's mistake, said as such: not a traceback through lab.spec.
                asked = f"{spec!r}, sets={list(sets)!r}" if sets else repr(spec)
                pytest.fail(f"lab_factory({asked}): {problem}", pytrace=False)
        base = _shared_name(base)
        target = dataclasses.replace(target, name=base.name)
        lab_image_check(base)
        return lab_pool.get(base, target)

    return factory


@pytest.fixture
def lab_spec(lab_flavor: str, lab_version: str | None, lab_engine: str) -> Lab:
    from lab.spec.labspec import SpecRequest, resolve

    return resolve(SpecRequest(topology=DEFAULT_TOPOLOGY, flavor=lab_flavor,
                               version=lab_version, engine=lab_engine))


@pytest.fixture
def lab(lab_factory: LabFactory, lab_spec: Lab) -> LabHandle:
    return lab_factory(lab_spec)


@pytest.fixture
def gitlab(lab: LabHandle) -> GitLab:
    from lab.client.gitlab import GitLab

    return GitLab.connect(lab.http_url, lab.admin_token)


@pytest.fixture
def testlab(lab: LabHandle) -> LabHandle:
    """``lab`` under a name that does not hide the ``lab`` package in a test module."""
    return lab


@pytest.fixture
def python_gitlab(lab: LabHandle) -> Any:
    """A python-gitlab ``gitlab.Gitlab`` logged in as the lab's admin (``keep_base_url``:
    GitLab's pagination links name its external_url, ``http://gitlab`` inside the lab)."""
    try:
        import gitlab as python_gitlab_module
    except ImportError:
        pytest.fail("the python_gitlab fixture needs python-gitlab: pip install python-gitlab "
                    "(or gitlab-testlab[test])", pytrace=False)
    return python_gitlab_module.Gitlab(lab.http_url, private_token=lab.admin_token,
                                       keep_base_url=True)


@pytest.fixture
def gitlab_client(gitlab: GitLab) -> GitLab:
    """The name the product brief uses; the same object as ``gitlab``."""
    return gitlab


# --- scenario files as items ------------------------------------------------------

class ScenarioFailed(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        self.result = result
        super().__init__(result.message)


def _scenario_test(planned: PlanItem) -> Callable[..., None]:
    def test_scenario(lab_pool: LabPool, lab_flavor: str, lab_engine: str,
                      lab_image_check: Callable[[Lab], None],
                      lab_collect: CollectFn | None, request: pytest.FixtureRequest) -> None:
        from lab.scenario.load import resolve_labs
        from lab.scenario.report import BUNDLE_PROPERTY
        from lab.scenario.runner import run_scenario

        labs = planned.labs
        if labs is None or labs.base.flavor.value != lab_flavor \
                or labs.base.engine.value != lab_engine:
            # A conftest overrode the flavour or engine fixture: the plan's labs are not
            # this run's.
            if lab_flavor not in planned.scenario.flavors:
                pytest.skip(f"scenario is for {', '.join(planned.scenario.flavors)} only; "
                            f"the lab_flavor fixture gives {lab_flavor}")
            labs = resolve_labs(planned.scenario, flavor=lab_flavor, version=planned.release,
                                engine=lab_engine)
        lab_image_check(labs.base)
        result = run_scenario(planned.scenario, labs, lab_pool, collect=lab_collect)
        if result.bundle:
            # A JUnit <property> of the case (not record_property: it warns under xunit2,
            # whose writer keeps the property all the same).
            request.node.user_properties.append((BUNDLE_PROPERTY, result.bundle))
        if not result.ok:
            raise ScenarioFailed(result)

    test_scenario.__doc__ = planned.scenario.description
    return test_scenario


class ScenarioItem(pytest.Function):
    """A plan item run as a test function, so it gets (overridable) fixtures."""

    planned: PlanItem
    group: str  # the lab it runs on ("" when skipped)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFailed):
            from lab.scenario.report import format_failure

            return format_failure(excinfo.value.result)
        if isinstance(excinfo.value, LabError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"scenario {self.planned.scenario.name}"


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        flavor = str(self.config.getoption("--lab-flavor"))
        try:
            planned = plan_file(self.config, self.path)
        except LabError as exc:
            raise self.CollectError(str(exc)) from None
        for p in planned:
            item = ScenarioItem.from_parent(self, name=p.name, callobj=_scenario_test(p))
            item.planned = p
            item.group = p.group
            for marker in ("docker", "slow", flavor):
                item.add_marker(marker)
            if p.labs is None:
                item.add_marker(pytest.mark.skip(
                    reason=p.why_skipped
                    or f"scenario is for {', '.join(p.scenario.flavors)} only; "
                    f"this run uses --lab-flavor {flavor}"))
            yield item


def scenario_folders(config: pytest.Config) -> list[Path]:
    """The ``lab_scenarios`` ini folders, resolved against the rootdir."""
    return [(config.rootpath / str(f)).resolve() for f in config.getini(SCENARIOS_INI)]


def named_folders(config: pytest.Config) -> list[Path]:
    """Folders named on the command line (`pytest my-scenarios/`; not ini testpaths)."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return []
    here = config.invocation_params.dir
    folders = [(here / arg.split("::", 1)[0]).resolve() for arg in config.args]
    return [f for f in folders if f.is_dir()]


# A scenario has top-level steps; other YAML (CI files, golden files) does not.
_STEPS = re.compile(r"^steps\s*:", re.MULTILINE)


def _looks_like_scenario(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return bool(_STEPS.search(f.read(1 << 20)))
    except OSError:
        return False


def _is_scenario_path(path: Path, parent: pytest.Collector) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    if parent.session.isinitpath(path):
        return True
    where = path.resolve()
    if any(where.is_relative_to(folder) for folder in scenario_folders(parent.config)):
        return True
    # `pytest my-checks/`: a folder named on the command line, whatever its name; only
    # its scenario files, so a folder with other YAML in it can still be named.
    return any(where.is_relative_to(folder) for folder in named_folders(parent.config)) \
        and _looks_like_scenario(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say it when an omnibus run used the sim image under a GitLab tag."""
    for warning in config.stash.get(IMAGE_WARNINGS, []):
        terminalreporter.write_line(f"gitlab-testlab warning: {warning}", yellow=True, bold=True)


class JUnitClassnames:
    """``--junitxml``: a scenario's classname is the one ``lab run --junit`` writes
    (``scenarios/NAME``: relative, no dots), not pytest's dotted path
    (``scenarios.tls-push.yaml``, which tools split into packages).

    Set through junitxml's node reporter before it writes the test case: attributes
    added there win over the ones it derives from the node id (``record_xml_attribute``
    works so, but it runs on xdist workers, which write no XML; this runs where the
    XML is written, the controller under xdist).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        path, _, name = report.nodeid.partition("::")
        if xml is None or not name or not path.endswith((".yaml", ".yml")):
            return
        from lab.scenario.report import junit_classname

        root = self.config.rootpath
        classname = junit_classname(str(root / path), cwd=root)
        if xml.prefix:  # --junitprefix, as pytest puts it
            classname = f"{xml.prefix}.{classname}"
        xml.node_reporter(report).add_attribute("classname", classname)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_scenario_path(file_path, parent):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run scenarios in plan order (lab by lab, so each lab boots once), in their slots."""
    slots = [i for i, item in enumerate(items) if isinstance(item, ScenarioItem)]
    scenario_items = [item for item in items if isinstance(item, ScenarioItem)]
    if not scenario_items:
        return
    from lab.scenario.plan import order

    by_plan = {id(item.planned): item for item in scenario_items}
    ordered = [by_plan[id(p)] for p in order(item.planned for item in scenario_items)]
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item
