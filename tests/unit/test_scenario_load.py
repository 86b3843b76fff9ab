"""Scenario parsing: the library loads, and each bad file names file, line, key and problem."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from lab.errors import SpecError
from lab.scenario.definition import Expected
from lab.scenario.load import find_scenarios, load_scenario, parse_scenario, resolve_labs

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"

GOOD = """\
name: demo
lab:
  topology: scaled
given:
  set:
    nodes.gitaly1.secrets: own
steps:
  - create_project: {project: p1, storage: storage1}
  - push: p1
    expect:
      outcome: fail
      output: '401 Unauthorized'
"""


def parse(text: str) -> object:
    sc = parse_scenario(textwrap.dedent(text), "sc.yaml")
    return resolve_labs(sc)


def test_good_file_parses_into_steps_and_labs() -> None:
    sc = parse_scenario(GOOD, "sc.yaml")
    assert [s.kind for s in sc.steps] == ["create_project", "push"]
    assert sc.steps[1].arg("project") == "p1"
    assert sc.steps[1].expect.expected is Expected.FAIL
    assert sc.steps[1].line == 9
    labs = resolve_labs(sc)
    assert labs.base.node("gitaly1").secrets.value == "shared"
    assert labs.target.node("gitaly1").secrets.value == "own"
    assert labs.base.name == labs.target.name
    assert labs.changes == ('nodes.gitaly1.secrets: "shared" -> "own"',)


def test_scenarios_of_one_lab_family_share_a_lab_name() -> None:
    other = GOOD.replace("secrets: own", "internal_api_url: ''")
    a = resolve_labs(parse_scenario(GOOD, "a.yaml"))
    b = resolve_labs(parse_scenario(other, "b.yaml"))
    assert a.base.name == b.base.name
    # Another base lab of the same topology and release: the same lab, changed into it.
    tls = resolve_labs(parse_scenario(GOOD.replace("  topology: scaled\n", "  topology: scaled\n"
                                                   "  set: {nodes.gitaly1.tls: true}\n"), "c.yaml"))
    assert tls.base.name == a.base.name
    assert tls.base != a.base
    # A node installed from source: the same lab, the node recreated from source.
    source = resolve_labs(parse_scenario(GOOD.replace("  topology: scaled\n",
                                                      "  topology: scaled\n  set: "
                                                      "{nodes.gitaly1.install: source}\n"),
                                         "e.yaml"))
    assert source.base.name == a.base.name
    assert source.base.node("gitaly1").from_source
    # Another release: a lab of its own.
    pinned = resolve_labs(parse_scenario(GOOD.replace("  topology: scaled\n",
                                                      "  topology: scaled\n"
                                                      "  version: '15.9.8'\n"), "d.yaml"))
    assert pinned.base.name != a.base.name


def test_version_from_the_run_unless_the_scenario_pins_one() -> None:
    sc = parse_scenario(GOOD, "sc.yaml")
    assert str(resolve_labs(sc, version="16.11.10").base.version) == "16.11.10"
    pinned = parse_scenario(GOOD.replace("  topology: scaled", "  topology: scaled\n"
                                         "  version: '15.9.8'"), "sc.yaml")
    assert str(resolve_labs(pinned, version="16.11.10").base.version) == "15.9.8"


def test_inline_spec_and_shorthands() -> None:
    sc = parse_scenario(textwrap.dedent("""\
        lab:
          spec:
            nodes:
              app: {roles: [app], publish: {http: 0}}
              g: {roles: [gitaly], storages: [default]}
        given:
          faults: [{stop: g}]
        steps:
          - start: g
          - reachable: {from: app, node: g, port: gitaly}
        """), "inline.yaml")
    labs = resolve_labs(sc)
    assert {n.name for n in labs.base.nodes} == {"app", "g"}
    assert sc.name == "inline"
    assert sc.given_faults[0].kind == "stop"
    assert sc.given_faults[0].args == (("node", "g"),)


BAD = [
    ("unknown top-level key", "lab: {topology: scaled}\nstep: []\n",
     r"^sc\.yaml:2: step: unknown key 'step'; valid keys here: name, description"),
    ("unknown topology", "lab: {topology: huge}\nsteps: [{push: p}]\n",
     r"^sc\.yaml:1: lab\.topology: unknown topology 'huge'; known topologies: "
     r"cluster, scaled"),
    ("topology given as a list", "lab: {topology: [scaled]}\nsteps: [{push: p}]\n",
     r"^sc\.yaml:1: lab\.topology: unknown topology \['scaled'\]; known topologies: "
     r"cluster, scaled"),
    ("no lab", "steps: [{api: /api/v4/user}]\n",
     r"^sc\.yaml:1: lab: name a topology"),
    ("no steps", "lab: {topology: scaled}\n",
     r"^sc\.yaml:1: steps: a scenario needs a list of steps"),
    ("unknown step", "lab: {topology: scaled}\nsteps:\n  - pushh: p1\n",
     r"^sc\.yaml:3: steps\.0\.pushh: unknown step 'pushh'; valid steps: create_project, push"),
    ("two actions in a step", "lab: {topology: scaled}\nsteps:\n  - {stop: g, start: g}\n",
     r"^sc\.yaml:3: steps\.0: a step names exactly one action, found 2: stop, start"),
    ("missing required argument", "lab: {topology: scaled}\nsteps:\n  - exec: {node: gitlab}\n",
     r"^sc\.yaml:3: steps\.0\.exec: exec needs 'cmd' \(a list of arguments\)"),
    ("unknown argument", "lab: {topology: scaled}\nsteps:\n  - api: {path: /x, verb: GET}\n",
     r"^sc\.yaml:3: steps\.0\.api\.verb: unknown key 'verb'; valid keys here: path, method, data"),
    ("wrong argument type",
     "lab: {topology: scaled}\nsteps:\n  - port:\n      node: gitaly1\n      port: ssh\n",
     r"^sc\.yaml:5: steps\.0\.port\.port: expected http or gitaly, got 'ssh'"),
    ("fail without output pattern",
     "lab: {topology: scaled}\nsteps:\n  - create_project: p1\n  - push: p1\n"
     "    expect: fail\n",
     r"^sc\.yaml:5: steps\.1\.expect: a `fail` expectation needs an `output` pattern"),
    ("bad outcome", "lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect: {outcome: ok}\n",
     r"^sc\.yaml:4: steps\.0\.expect\.outcome: 'ok' is not one of: success, fail"),
    ("bad regex",
     "lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect:\n      output: '(unclosed'\n",
     r"^sc\.yaml:5: steps\.0\.expect\.output: /\(unclosed/ is not a valid regular expression"),
    ("project used before it is created", "lab: {topology: scaled}\nsteps:\n  - push: p9\n",
     r"^sc\.yaml:3: steps\.0\.push: project 'p9' is not created by an earlier create_project"),
    ("api path names an unknown project",
     "lab: {topology: scaled}\nsteps:\n  - api: /api/v4/projects/{p1}\n",
     r"^sc\.yaml:3: steps\.0\.api: project 'p1' is not created"),
    ("given fault that is not a fault",
     "lab: {topology: scaled}\ngiven:\n  faults:\n    - start: gitaly1\nsteps: [{api: /x}]\n",
     r"^sc\.yaml:4: given\.faults\.0\.start: unknown step 'start'; valid steps: stop, pause"),
    ("override of an unknown spec key",
     "lab: {topology: scaled}\ngiven:\n  set:\n    nodes.gitaly1.secret: own\n"
     "steps: [{api: /x}]\n",
     r"^sc\.yaml:4: nodes\.gitaly1\.secret: unknown key 'secret'; valid keys here: roles"),
    ("override with a bad value",
     "lab: {topology: scaled}\ngiven:\n  set:\n    nodes.gitaly1.secrets: copied\n"
     "steps: [{api: /x}]\n",
     r"^sc\.yaml:4: nodes\.gitaly1\.secrets: 'copied' is not one of: shared, own, none"),
    ("override below a list",
     "lab: {topology: scaled}\ngiven:\n  set:\n    nodes.gitlab.roles.x: 1\n"
     "steps: [{api: /x}]\n",
     r"^sc\.yaml:4: nodes\.gitlab\.roles\.x: nodes\.gitlab\.roles is not a mapping, "
     r"so it has no key 'x'$"),
    ("override that adds an incomplete node",
     "lab: {topology: scaled}\ngiven:\n  set:\n    nodes.gitaly3.tls: true\n"
     "steps: [{api: /x}]\n",
     r"^sc\.yaml:4: nodes\.gitaly3\.roles: every node needs roles"),
    ("base override with a bad type",
     "lab:\n  topology: scaled\n  set:\n    nodes.gitaly1.tls: sometimes\nsteps: [{api: /x}]\n",
     r"^sc\.yaml:4: nodes\.gitaly1\.tls: expected true or false, got str 'sometimes'"),
    ("step on an unknown node", "lab: {topology: scaled}\nsteps:\n  - stop: gitaly9\n",
     r"^sc\.yaml:3: steps\.0\.stop\.node: no node 'gitaly9' in this lab; nodes: gitaly1, gitlab"),
    ("given fault on an unknown node",
     "lab: {topology: scaled}\ngiven:\n  faults:\n    - stop: gitaly1\n    - pause: gitaly9\n"
     "steps: [{api: /x}]\n",
     r"^sc\.yaml:5: given\.faults\.1\.pause\.node: no node 'gitaly9' in this lab"),
    ("step from an unknown node",
     "lab: {topology: scaled}\nsteps:\n  - reachable: {node: gitaly1, port: gitaly, from: x}\n",
     r"^sc\.yaml:3: steps\.0\.reachable\.from: no node 'x' in this lab"),
    ("unknown storage",
     "lab: {topology: scaled}\nsteps:\n  - create_project: {project: p1, storage: s9}\n",
     r"^sc\.yaml:3: steps\.0\.create_project\.storage: no storage 's9' in this lab; "
     r"storages: default, storage1"),
    ("unhealthy on a node that is no Gitaly node of a Praefect",
     "lab: {topology: cluster}\nsteps:\n  - unhealthy: praefect-db\n",
     r"^sc\.yaml:3: steps\.0\.unhealthy\.node: 'praefect-db' is not a Gitaly node behind a "
     r"Praefect in this lab; those are: gitaly1, gitaly2, gitaly3$"),
    ("unhealthy on an unknown node",
     "lab: {topology: cluster}\nsteps:\n  - unhealthy: {node: gitaly9, wait: 5}\n",
     r"^sc\.yaml:3: steps\.0\.unhealthy\.node: 'gitaly9' is not a Gitaly node behind a "
     r"Praefect in this lab"),
    ("unhealthy in a lab without Praefect",
     "lab: {topology: scaled}\nsteps:\n  - unhealthy: gitaly1\n",
     r"^sc\.yaml:3: steps\.0\.unhealthy\.node: 'gitaly1' is not a Gitaly node behind a "
     r"Praefect: this lab has no Praefect \(topology: cluster has one\)$"),
    ("unhealthy waiting too long",
     "lab: {topology: cluster}\nsteps:\n  - unhealthy: {node: gitaly2, wait: 601}\n",
     r"^sc\.yaml:3: steps\.0\.unhealthy\.wait: expected a number of seconds from 0 to 600, "
     r"got 601$"),
    ("unhealthy without a node",
     "lab: {topology: cluster}\nsteps:\n  - unhealthy: {wait: 5}\n",
     r"^sc\.yaml:3: steps\.0\.unhealthy: unhealthy needs 'node' \(a Gitaly node behind a "
     r"Praefect\)$"),
    ("log evidence on an unknown node",
     "lab: {topology: scaled}\nsteps:\n  - api: /x\n    expect:\n"
     "      log: {node: nope, pattern: x}\n",
     r"^sc\.yaml:3: steps\.0\.expect\.log\.node: no node 'nope'"),
    ("unquoted version", "lab: {topology: scaled, version: 17.5}\nsteps: [{api: /x}]\n",
     r"^sc\.yaml:1: lab\.version: expected a version string like \"18\.11\.1\", got 17\.5"),
    ("flavour typo", "flavors: [omnibuss]\nlab: {topology: scaled}\nsteps: [{api: /x}]\n",
     r"^sc\.yaml:1: flavors: expected a list of flavours out of: omnibus, sim"),
    ("not YAML", "lab: [\n", r"^sc\.yaml:2: not valid YAML"),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_names_file_line_key(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse(text)
    assert re.search(message, str(err.value)), str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"missing\.yaml: cannot read the scenario file"):
        load_scenario(tmp_path / "missing.yaml")


def test_find_scenarios_walks_directories(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.yaml", "sub/a.yml", "notes.md"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in find_scenarios([tmp_path])] == ["b.yaml", "a.yml"]
    with pytest.raises(SpecError, match="no such scenario file"):
        find_scenarios([tmp_path / "nope"])


# --- the built-in library ------------------------------------------------------

LIBRARY_FILES = sorted(LIBRARY.glob("*.yaml"))

# What a negative step would print if it failed for a reason other than the one
# under test; no negative expectation in the library may accept any of these.
WRONG_REASONS = [
    "HTTP 404 {\"message\": \"404 Project Not Found\"}",
    "remote: The project you were looking for could not be found.\n"
    "fatal: repository 'http://127.0.0.1:1/root/p1.git/' not found",
    "fatal: Authentication failed for 'http://127.0.0.1:1/root/p1.git/'",
    "HTTP 401 {\"message\": \"401 Unauthorized\"}",
    "fatal: unable to access 'http://127.0.0.1:1/root/p1.git/': Failed to connect to 127.0.0.1",
    "no answer from http://127.0.0.1:1/api/v4/projects: Connection refused",
    "HTTP 400 {\"message\": {\"name\": [\"has already been taken\"]}}",
    "error: src refspec main does not match any\n! [rejected] HEAD -> main (non-fast-forward)",
]


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.stem)
def test_library_file_loads_on_both_flavours(path: Path) -> None:
    for flavor in ("sim", "omnibus"):
        sc = load_scenario(path, flavor=flavor)
    assert sc.name == path.stem
    assert sc.description
    assert sc.guide


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.stem)
def test_library_negative_steps_cannot_pass_for_the_wrong_reason(path: Path) -> None:
    sc = load_scenario(path)
    for step in sc.steps:
        if step.expect.expected is Expected.FAIL:
            assert step.expect.output
            for wrong in WRONG_REASONS:
                assert not re.search(step.expect.output, wrong, re.MULTILINE), (step.label, wrong)
            # A project-based failure must come after the project was created successfully.
            if step.arg("project") and step.kind != "create_project":
                creates = [s for s in sc.steps[: sc.steps.index(step)]
                           if s.kind == "create_project"
                           and s.arg("project") == step.arg("project")]
                assert creates
                assert creates[0].expect.expected is Expected.SUCCESS


def test_library_covers_every_row_of_the_brief() -> None:
    names = {p.stem for p in LIBRARY_FILES}
    assert {"shared-secrets-push-clone", "gitaly-own-secrets", "gitaly-no-secrets",
            "internal-api-url-wrong", "internal-api-url-unset", "auth-token-mismatch",
            "two-storages", "tls-push", "tls-untrusted-ca", "tls-san-mismatch",
            "gitaly-port-not-published", "gitaly-stopped"} <= names


def test_readme_scenario_table_lists_every_built_in() -> None:
    readme = (LIBRARY.parent / "README.md").read_text()
    table = readme.split("## Scenarios", 1)[1].split("### ", 1)[0]
    listed: set[str] = set()
    for row in table.splitlines():
        if not row.startswith("| `"):
            continue
        previous = ""
        for name in re.findall(r"`([^`]+)`", row.split("|")[1]):
            # `internal-api-url-wrong` / `-unset`: the second shares the first's stem.
            previous = previous.rsplit("-", 1)[0] + name if name.startswith("-") else name
            listed.add(previous)
    assert listed == {p.stem for p in LIBRARY_FILES}


@pytest.mark.parametrize("name", ["/tmp/x", "../x", "a/../../x", ".git/config",
                                  "sub/.git/hooks/pre-commit"])
def test_push_file_names_stay_in_the_repository(name: str) -> None:
    text = ("lab: {topology: scaled}\nsteps:\n  - create_project: p1\n"
            f"  - push:\n      project: p1\n      files: {{'{name}': x}}\n")
    with pytest.raises(SpecError, match=r"steps\.1\.push\.files.*not in \.git"):
        parse_scenario(text, "sc.yaml")


@pytest.mark.parametrize("branch", ["--upload-pack=touch /tmp/x", "a b", "a..b"])
def test_push_branch_is_a_plain_branch_name(branch: str) -> None:
    text = ("lab: {topology: scaled}\nsteps:\n  - create_project: p1\n"
            f"  - push: {{project: p1, branch: '{branch}'}}\n")
    with pytest.raises(SpecError, match=r"steps\.1\.push\.branch.*a branch name"):
        parse_scenario(text, "sc.yaml")


def test_names_with_a_trailing_line_break_are_refused() -> None:
    with pytest.raises(SpecError, match="invalid scenario name"):
        parse_scenario('name: "demo\\n"\n' + GOOD.replace("name: demo\n", ""), "sc.yaml")
    with pytest.raises(SpecError, match="invalid project alias"):
        parse_scenario(GOOD.replace("project: p1, storage", 'project: "p1\\n", storage')
                       .replace("  - push: p1\n", "  - push: \"p1\\n\"\n"), "sc.yaml")
