"""Hostile input: each bad input exits with the README's code, says where and what to do,
prints no traceback, and changes nothing outside the lab folder.

Every case runs the real CLI in this process with Docker pointed at a socket that
does not exist, so nothing here needs (or touches) an engine; the cases that need
one are in test_hostile_docker.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.cli.main import main

SPEC = """\
name: hostile
nodes:
  gitlab:
    roles: [app]
  gitaly1:
    roles: [gitaly]
    storages: [default]
"""
SCENARIO = "lab: {topology: scaled}\nsteps:\n  - api: /api/v4/user\n"
# Nine levels of nine aliases: 9**9 (387 million) values once expanded.
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                  strict=True))
NO_DOCKER = "unix:///nonexistent/docker.sock"


DEEP = "[" * 3000 + "]" * 3000
# A token as the lab makes them (64 hex digits): no case may print it.
SECRET = "5ec7e7" + "0123456789abcdef" * 3 + "c0ffee0000"
# A flow-style alias bomb for --set (one line): 9**9 values once expanded.
FLOW_BOMB = "{a: &a [x, x, x, x, x, x, x, x, x], " + ", ".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi",
                                                                strict=True)) + "}"


def _deep_folder(ws: Path) -> None:
    """40 nested folders with a scenario at the bottom (the walk stops at 32)."""
    here = ws / "deep"
    for _ in range(40):
        here = here / "d"
    here.mkdir(parents=True)
    (here / "sc.yaml").write_text(SCENARIO)


def spec_with(node_lines: str, top: str = "") -> str:
    """SPEC with extra lines for gitaly1 (line 8 on) and at the top (line 1 on)."""
    return top + SPEC + node_lines


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    code: int
    expect: tuple[str, ...]  # each must appear in the output ({ws}: the workspace)
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # marker files ({tmp}: beside the workspace) never made
    needs_ruby: bool = False


def ruby_case(cid: str, statement: str, marker: str = "") -> Case:
    """A gitlab.rb whose line 2 would act on the host if it were run; import reads it only."""
    rb = f"external_url 'http://gitlab.example'\n{statement}\nnginx['enable'] = true\n"
    return Case(cid, ("import", "{ws}/gitlab.rb"), 0,
                ("not reproduced", "gitlab: line 2", "Ruby code", "never run"),
                files={"gitlab.rb": rb}, absent=(marker,) if marker else (), needs_ruby=True)


def _symlink_out(ws: Path) -> None:
    (ws / "real").mkdir()
    (ws / "out").symlink_to(ws / "real")


def _user_folder(ws: Path) -> None:
    (ws / "out").mkdir()
    (ws / "out" / "docker-compose.yml").write_text("mine\n")


def _out_is_file(ws: Path) -> None:
    (ws / "out").write_text("a file\n")


def _crafted_manifest(nodes: object) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        import json

        (ws / "out" / ".lab").mkdir(parents=True)
        (ws / "victim").mkdir()
        (ws / "victim" / "precious").write_text("keep me\n")
        (ws / "out" / "manifest.json").write_text(json.dumps({"toolkit": "gitlab-testlab 0",
                                                               "name": "scaled",
                                                               "nodes": nodes}))
    return setup


def _link_in_node_folder(ws: Path) -> None:
    from lab.cli.main import main as _  # noqa: F401  (the package imports cleanly first)

    (ws / "out" / ".lab").mkdir(parents=True)
    (ws / "out" / "manifest.json").write_text('{"toolkit": "gitlab-testlab 0", "name": "scaled", '
                                              '"nodes": {}}')
    (ws / "out" / "nodes" / "gitaly1").mkdir(parents=True)
    (ws / "elsewhere").mkdir()
    # What a container could do to its own /etc/gitlab: point ssl/ out of the lab folder.
    (ws / "out" / "nodes" / "gitaly1" / "ssl").symlink_to(ws / "elsewhere")


def _state_dir_is_a_file(ws: Path) -> None:
    (ws / "out").mkdir()
    (ws / "out" / "manifest.json").write_text('{"toolkit": "gitlab-testlab 0", "name": "scaled", '
                                              '"nodes": {}}')
    (ws / "out" / ".lab").write_text("not a folder\n")


def _other_lab(ws: Path) -> None:
    (ws / "out" / ".lab").mkdir(parents=True)
    (ws / "out" / "manifest.json").write_text('{"toolkit": "gitlab-testlab 0", '
                                              '"name": "someone-else", "nodes": {}}')


def _existing_import_output(ws: Path) -> None:
    (ws / "acme.yaml").write_text("the customer's notes\n")


R = ("render", "-o", "{ws}/out")
SPEC_FILE = "{ws}/spec.yaml"

CASES = [
    # --- spec files: unreadable, binary, huge, bombs ---------------------------------
    Case("spec-missing", (*R, "-f", "{ws}/nope.yaml"), 2,
         ("{ws}/nope.yaml", "cannot read the spec file", "No such file")),
    Case("spec-is-dir", (*R, "-f", "{ws}"), 2, ("{ws}", "is a directory", "give a YAML file")),
    Case("spec-binary", (*R, "-f", SPEC_FILE), 2, ("{ws}/spec.yaml", "binary file"),
         files={"spec.yaml": b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256))}),
    Case("spec-not-utf8", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:2", "not UTF-8", "save it as UTF-8"),
         files={"spec.yaml": b"name: x\nnodes: \xff\xfe\n"}),
    Case("spec-huge", (*R, "-f", SPEC_FILE), 2, ("{ws}/spec.yaml", "larger than 128 KiB"),
         files={"spec.yaml": "# padding\n" * 20000}),
    Case("spec-alias-bomb", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "expands into more than", "write the values out"),
         files={"spec.yaml": BOMB}),
    Case("spec-bad-yaml", (*R, "-f", SPEC_FILE), 2, ("{ws}/spec.yaml:3", "not valid YAML"),
         files={"spec.yaml": "name: x\nnodes:\n\tgitlab: {}\n"}),
    Case("spec-a-list", (*R, "-f", SPEC_FILE), 2, ("{ws}/spec.yaml:1", "must be a mapping"),
         files={"spec.yaml": "- a\n- b\n"}),
    Case("spec-unknown-key", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "colour", "valid keys here"),
         files={"spec.yaml": "colour: red\n" + SPEC}),
    Case("spec-duplicate-key", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:2", "duplicate key 'name'"),
         files={"spec.yaml": "name: a\n" + SPEC}),
    Case("spec-complex-key", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "a key must be a plain string"),
         files={"spec.yaml": "? [a, b]\n: 1\n"}),
    Case("spec-unknown-topology", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "topology", "known topologies"),
         files={"spec.yaml": "topology: ../../etc/passwd\n"}),
    Case("spec-bad-lab-name", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "name:", "invalid lab name '../evil'", "lower-case letters"),
         files={"spec.yaml": SPEC.replace("name: hostile", "name: ../evil")}),
    Case("spec-bad-node-name", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:3", "nodes.../x", "invalid node name", "lower-case letters"),
         files={"spec.yaml": SPEC.replace("  gitlab:", "  ../x:")}),
    Case("spec-node-without-roles", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml", "nodes.gitlab.roles", "every node needs roles"),
         files={"spec.yaml": SPEC.replace("    roles: [app]\n", "    trust_ca: true\n")}),
    Case("spec-unknown-role", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:4", "nodes.gitlab.roles.0", "'root' is not one of"),
         files={"spec.yaml": SPEC.replace("[app]", "[root]")}),
    Case("spec-version-garbage", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "version", "X.Y.Z"),
         files={"spec.yaml": "version: '1; rm -rf /'\n" + SPEC}),
    Case("spec-version-too-old", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "version", "oldest supported"),
         files={"spec.yaml": "version: 9.0.0\n" + SPEC}),
    Case("spec-version-from-the-future", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "version", "newer than the newest", "--force-version"),
         files={"spec.yaml": "version: 99.0.0\n" + SPEC}),
    Case("storage-path-etc", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:9", "nodes.gitaly1.storages.0.path", "system directory /etc",
          "use a folder of its own"),
         files={"spec.yaml": SPEC.replace("storages: [default]",
                                          "storages:\n      - name: default\n        path: /etc")}),
    Case("storage-path-dotdot", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:9", "nodes.gitaly1.storages.0.path", "'..'"),
         files={"spec.yaml": SPEC.replace(
             "storages: [default]",
             "storages:\n      - name: default\n        path: /var/opt/../../etc")}),
    Case("storage-path-relative", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:9", "storages.0.path", "absolute path"),
         files={"spec.yaml": SPEC.replace(
             "storages: [default]", "storages:\n      - name: default\n        path: data")}),
    Case("storage-path-root", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:9", "storages.0.path", "top-level folder"),
         files={"spec.yaml": SPEC.replace(
             "storages: [default]", "storages:\n      - name: default\n        path: /")}),
    Case("storage-path-proc", (*R, "-f", SPEC_FILE), 2,
         ("storages.0.path", "system directory /proc"),
         files={"spec.yaml": SPEC.replace(
             "storages: [default]",
             "storages:\n      - name: default\n        path: /proc/self")}),
    Case("storage-bad-name", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:7", "storages.0", "invalid storage name"),
         files={"spec.yaml": SPEC.replace("[default]", "['../x']")}),
    Case("storage-duplicate", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:10", "nodes.gitaly2.storages", "already served by gitaly1"),
         files={"spec.yaml": SPEC.replace("[default]", "[default]\n  gitaly2:\n    roles: "
                                          "[gitaly]\n    storages: [default]")}),
    Case("no-default-storage", (*R, "-f", SPEC_FILE), 2,
         ("nodes", "storage named 'default'"),
         files={"spec.yaml": SPEC.replace("[default]", "[other]")}),
    Case("two-app-nodes", (*R, "-f", SPEC_FILE), 2, ("nodes", "exactly one app node"),
         files={"spec.yaml": SPEC.replace("[gitaly]", "[gitaly, app]")}),
    Case("image-shell-injection", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "image", "not a Docker image reference"),
         files={"spec.yaml": 'image: "alpine; touch /tmp/pwned"\n' + SPEC}),
    Case("image-upper-case", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "image", "lower-case name"),
         files={"spec.yaml": "image: Alpine:3\n" + SPEC}),
    Case("image-newline", ("render", "scaled", "-o", "{ws}/out", "--set",
                           "image=alpine\n--privileged"), 2,
         ("--set image=", "not a Docker image reference")),
    # A trailing line break: "$" of a regular expression matches before it.
    Case("name-trailing-newline", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "invalid lab name 'hostile\\n'"),
         files={"spec.yaml": SPEC.replace("name: hostile", 'name: "hostile\\n"')}),
    Case("node-trailing-newline", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:5", "invalid node name 'gitaly1\\n'"),
         files={"spec.yaml": SPEC.replace("  gitaly1:", '  "gitaly1\\n":')}),
    Case("storage-trailing-newline", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:7", "invalid storage name 'other\\n'"),
         files={"spec.yaml": SPEC.replace("[default]", '[default, "other\\n"]')}),
    # The file replaced the topology's node: the error is the file's, not the topology's.
    Case("node-null-over-topology", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:3: nodes.gitaly1.roles", "every node needs roles"),
         files={"spec.yaml": "topology: scaled\nnodes:\n  gitaly1: null\n"}),
    # Unquoted, YAML reads these as a number or a boolean; they were taken as "no version".
    Case("version-zero", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "version: expected a GitLab version X.Y.Z, got 0", "in quotes"),
         files={"spec.yaml": "version: 0\n" + SPEC}),
    Case("version-float", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "got 17.1;", "in quotes"),
         files={"spec.yaml": "version: 17.10\n" + SPEC}),
    Case("version-empty-string", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "'' is not a GitLab version"),
         files={"spec.yaml": 'version: ""\n' + SPEC}),
    Case("image-trailing-newline", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "not a Docker image reference"),
         files={"spec.yaml": 'image: "alpine\\n"\n' + SPEC}),
    Case("tls-san-trailing-newline", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:8", "tls_san.0", "not a DNS name"),
         files={"spec.yaml": spec_with('    tls_san: ["gitaly1\\n"]\n')}),
    Case("tls-san-space", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:8", "nodes.gitaly1.tls_san.0", "not a DNS name"),
         files={"spec.yaml": spec_with('    tls_san: ["a b"]\n')}),
    Case("tls-san-dotdot", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:8", "tls_san.0", "not a DNS name"),
         files={"spec.yaml": spec_with('    tls_san: ["../"]\n')}),
    Case("tls-san-not-a-list", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:8", "tls_san", "a list of DNS names"),
         files={"spec.yaml": spec_with("    tls_san: gitaly1\n")}),
    Case("port-out-of-range", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:8", "nodes.gitaly1.publish.gitaly", "out of range"),
         files={"spec.yaml": spec_with("    publish: {gitaly: 70000}\n")}),
    Case("port-negative", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:8", "publish.gitaly", "out of range"),
         files={"spec.yaml": spec_with("    publish: {gitaly: -1}\n")}),
    Case("port-boolean", (*R, "-f", SPEC_FILE), 2,
         ("publish.gitaly", "expected a port number"),
         files={"spec.yaml": spec_with("    publish: {gitaly: true}\n")}),
    Case("set-without-equals", ("render", "scaled", "-o", "{ws}/out", "--set", "tls"), 2,
         ("--set tls", "expected KEY=VALUE")),
    Case("set-into-a-scalar", ("render", "scaled", "-o", "{ws}/out", "--set",
                               "tls.x=1"), 2, ("--set tls.x=1", "tls", "expected true or false")),
    Case("set-version-future", ("render", "scaled", "-o", "{ws}/out", "--version", "99.0.0"), 2,
         ("--version", "newer than the newest", "--force-version")),
    # --- limits before parsing: nesting, aliases, --set ----------------------------------
    Case("spec-deep-nesting", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:2", "nests more than 32 levels deep"),
         files={"spec.yaml": "name: x\nnodes: " + DEEP + "\n"}),
    Case("spec-deep-block-nesting", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml", "nests more than 32 levels deep"),
         files={"spec.yaml": "nodes:\n" + "".join("  " * i + "- \n" for i in range(1, 40))}),
    Case("set-deep-nesting", ("render", "scaled", "-o", "{ws}/out", "--set", "tls=" + DEEP), 2,
         ("--set tls=[[[", "the value nests more than 32 levels deep")),
    Case("set-alias-bomb", ("render", "scaled", "-o", "{ws}/out", "--set",
                            "nodes.gitaly1.tls_san=" + FLOW_BOMB), 2,
         ("--set nodes.gitaly1.tls_san=", "expands into more than 10000 values")),
    Case("set-huge-value", ("render", "scaled", "-o", "{ws}/out", "--set",
                            "omnibus_config=" + "x" * 140_000), 2,
         ("--set omnibus_config=xxx", "larger than 128 KiB")),
    Case("set-odd-tag-is-text", ("render", "scaled", "-o", "{ws}/out", "--set",
                                 "image=!!int abc"), 2,
         ("--set image=!!int abc", "not a Docker image reference")),
    Case("run-deep-nesting", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:2", "nests more than 32 levels deep"),
         files={"sc.yaml": "lab: {topology: scaled}\nsteps: " + DEEP + "\n"}),
    Case("run-deep-folder", ("run", "{ws}/deep"), 2,
         ("{ws}/deep", "nests folders more than 32 levels deep", "name a folder nearer"),
         setup=_deep_folder),
    # --- secrets given with bad input are not repeated ------------------------------------
    Case("set-secret-of-the-wrong-type", ("render", "scaled", "-o", "{ws}/out", "--set",
                                          f"nodes.gitaly1.gitaly_token=[{SECRET}]"), 2,
         ("--set nodes.gitaly1.gitaly_token=(value not shown: a secret)",
          "expected a token string, got list (value not shown: a secret)")),
    Case("set-secret-too-deep", ("render", "scaled", "-o", "{ws}/out", "--set",
                                 f"gitaly_token={'[' * 40}{SECRET}"), 2,
         ("--set gitaly_token=(value not shown: a secret)", "nests more than 32")),
    Case("spec-secret-of-the-wrong-type", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "gitaly_token", "(value not shown: a secret)"),
         files={"spec.yaml": f"gitaly_token: {{t: {SECRET}}}\n" + SPEC}),
    # --- scenario patterns: RE2, no backtracking --------------------------------------------
    Case("run-pattern-lookahead", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "steps.0.expect.output", "/a(?=b)/", "invalid perl operator",
          "RE2", "lookahead"),
         files={"sc.yaml": SCENARIO + "    expect: {outcome: fail, output: 'a(?=b)'}\n"}),
    Case("run-pattern-backreference", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:5", "steps.0.expect.log.pattern", "/(a)\\1/", "backreferences"),
         files={"sc.yaml": SCENARIO + "    expect:\n      log: {node: gitlab, pattern: "
                                      "'(a)\\1'}\n"}),
    Case("run-pattern-too-big", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "steps.0.expect.output", "too big to match quickly"),
         files={"sc.yaml": SCENARIO + "    expect: {outcome: fail, output: "
                                      "'(\\w+\\s?){1000}'}\n"}),
    Case("run-pattern-too-long", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "steps.0.expect.output", "1001 characters long"),
         files={"sc.yaml": SCENARIO + "    expect: {outcome: fail, output: '"
                                      + "a" * 1001 + "'}\n"}),
    # --- values that looked fine ------------------------------------------------------------
    Case("storage-path-var-run", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:9", "storages.0.path", "system directory /var/run"),
         files={"spec.yaml": SPEC.replace(
             "storages: [default]",
             "storages:\n      - name: default\n        path: /var/run/git")}),
    Case("version-arabic-digits", (*R, "-f", SPEC_FILE), 2,
         ("{ws}/spec.yaml:1", "version", "is not a GitLab version"),
         files={"spec.yaml": 'version: "\u0661\u0667.\u0661\u0661.\u0667"\n' + SPEC}),
    Case("up-version-arabic-digits", ("up", "scaled", "--version",
                                      "\u0661\u0667.\u0661\u0661.\u0667"), 2,
         ("--version", "is not a GitLab version")),
    Case("up-timeout-nan", ("up", "scaled", "--timeout", "nan"), 2,
         ("--timeout", "'nan' is not a number of seconds")),
    Case("up-timeout-infinite", ("up", "scaled", "--timeout", "inf"), 2, ("--timeout", "inf")),
    # --- text that looks like console markup ----------------------------------------------
    Case("list-markup-in-lab-home", ("list",), 0, ("No labs in {tmp}/h[/x]/labs",),
         env={"LAB_HOME": "{tmp}/h[/x]"}),
    Case("render-markup-in-output-path", ("render", "scaled", "-o", "{ws}/out/[/y][red]x"), 0,
         ("Rendered lab scaled", "{ws}/out/[/y][red]x", "cd {ws}/out/[/y][red]x &&")),
    # --- the output folder ----------------------------------------------------------------
    Case("out-users-folder", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("{ws}/out", "not a lab folder", "--force"), setup=_user_folder),
    Case("out-symlink", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("{ws}/out", "symbolic link"), setup=_symlink_out),
    Case("out-is-a-file", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("{ws}/out", "not a directory", "choose another -o"), setup=_out_is_file),
    Case("manifest-node-escapes", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("{ws}/out/manifest.json", "nodes.../../victim", "render again"),
         setup=_crafted_manifest({"../../victim": {"roles": ["app"]}})),
    Case("manifest-nodes-not-a-mapping", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("{ws}/out/manifest.json", "nodes", "expected a mapping"),
         setup=_crafted_manifest(["../../victim"])),
    Case("manifest-node-absolute", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("manifest.json", "nodes./tmp", "not a node"),
         setup=_crafted_manifest({"/tmp": {}})),
    Case("link-in-node-folder", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("{ws}/out/nodes/gitaly1/ssl", "symbolic link", "Remove the link"),
         setup=_link_in_node_folder),
    Case("unwritable-lab-folder", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("cannot write the lab folder", "{ws}/out/.lab", "writable"),
         setup=_state_dir_is_a_file),
    Case("folder-of-another-lab", ("render", "scaled", "-o", "{ws}/out"), 2,
         ("holds lab 'someone-else'", "--regenerate"), setup=_other_lab),
    # --- lab up -----------------------------------------------------------------------------
    Case("up-negative-timeout", ("up", "scaled", "--timeout", "-5"), 2,
         ("--timeout", "-5")),
    Case("up-timeout-not-a-number", ("up", "scaled", "--timeout", "soon"), 2,
         ("--timeout", "soon")),
    Case("up-unknown-topology", ("up", "huge"), 2, ("topology", "known topologies")),
    Case("up-bad-name", ("up", "scaled", "--name", "../etc"), 2,
         ("--name", "invalid lab name", "lower-case letters")),
    Case("up-version-future", ("up", "scaled", "--version", "99.0.0"), 2,
         ("--version", "--force-version")),
    Case("up-binary-spec", ("up", "-f", SPEC_FILE), 2, ("{ws}/spec.yaml", "binary file"),
         files={"spec.yaml": b"\x00\x01\x02"}),
    Case("up-no-docker", ("up", "scaled"), 3, ("Docker",)),
    # --- lab run and the scenario format ------------------------------------------------------
    Case("run-missing", ("run", "{ws}/nope.yaml"), 2,
         ("{ws}/nope.yaml", "no such scenario file")),
    Case("run-binary", ("run", "{ws}/sc.yaml"), 2, ("{ws}/sc.yaml", "binary file"),
         files={"sc.yaml": b"\x89PNG\r\n\x1a\n\x00\x00"}),
    Case("run-alias-bomb", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:1", "expands into more than"), files={"sc.yaml": BOMB}),
    Case("run-huge", ("run", "{ws}/sc.yaml"), 2, ("{ws}/sc.yaml", "larger than"),
         files={"sc.yaml": SCENARIO + "#" * 200_000 + "\n"}),
    Case("run-unknown-step", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "steps.1.pushh", "unknown step"),
         files={"sc.yaml": SCENARIO + "  - pushh: p1\n"}),
    Case("run-unknown-key", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:1", "colour", "valid keys here"),
         files={"sc.yaml": "colour: red\n" + SCENARIO}),
    Case("run-no-steps", ("run", "{ws}/sc.yaml"), 2, ("steps", "needs a list of steps"),
         files={"sc.yaml": "lab: {topology: scaled}\n"}),
    Case("run-bad-regex", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "output", "not a valid regular expression"),
         files={"sc.yaml": SCENARIO + "    expect: {output: '(['}\n"}),
    Case("run-unknown-topology", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:1", "lab.topology", "known topologies"),
         files={"sc.yaml": SCENARIO.replace("scaled", "nowhere")}),
    Case("run-bad-set", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml", "nodes.gitaly1.secrets", "is not one of"),
         files={"sc.yaml": SCENARIO.replace(
             "lab: {topology: scaled}",
             "lab:\n  topology: scaled\n  set: {nodes.gitaly1.secrets: stolen}")}),
    Case("run-unknown-node", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:3", "steps.0.stop", "gitaly9"),
         files={"sc.yaml": "lab: {topology: scaled}\nsteps:\n  - stop: gitaly9\n"}),
    Case("run-storage-path-etc", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml", "system directory /etc"),
         files={"sc.yaml": "lab:\n  spec:\n    nodes:\n      gitlab: {roles: [app]}\n"
                           "      gitaly1:\n        roles: [gitaly]\n        storages:\n"
                           "          - {name: default, path: /etc/gitlab}\n"
                           "steps:\n  - api: /api/v4/user\n"}),
    Case("run-push-git-config", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "steps.1.push.files", "not in .git"),
         files={"sc.yaml": "lab: {topology: scaled}\nsteps:\n  - create_project: p1\n"
                           "  - push: {project: p1, files: {.git/config: '[core]'}}\n"}),
    Case("run-push-outside", ("run", "{ws}/sc.yaml"), 2,
         ("{ws}/sc.yaml:4", "steps.1.push.files", "no '..'"),
         files={"sc.yaml": "lab: {topology: scaled}\nsteps:\n  - create_project: p1\n"
                           "  - push: {project: p1, files: {../../x: y}}\n"}),
    Case("run-empty-dir", ("run", "{ws}/empty"), 2, ("no scenario files",),
         setup=lambda ws: (ws / "empty").mkdir()),
    Case("run-no-docker", ("run", "{ws}/sc.yaml"), 3, ("Docker",),
         files={"sc.yaml": SCENARIO}),
    # Checked before any lab boots, not after the run (the report is written last).
    Case("run-junit-under-a-file", ("run", "{ws}/sc.yaml", "--junit", "{ws}/sc.yaml/out.xml"),
         2, ("cannot write the JUnit report", "{ws}/sc.yaml is not a folder", "--junit"),
         files={"sc.yaml": SCENARIO}),
    # Root passes every access() check on /proc; writing there fails all the same.
    Case("run-junit-in-proc", ("run", "{ws}/sc.yaml", "--junit", "/proc/x/y.xml"), 2,
         ("cannot write the JUnit report /proc/x/y.xml", "/proc cannot be written to",
          "--junit"), files={"sc.yaml": SCENARIO}),
    # --- commands on a lab: logs, exec, status, down, doctor, collect ----------------------------
    Case("logs-since-garbage", ("logs", "gitlab", "--since", "garbage"), 2,
         ("--since", "garbage", "10m")),
    Case("logs-since-infinite", ("logs", "gitlab", "--since", "inf"), 2, ("--since", "inf")),
    Case("logs-negative-tail", ("logs", "gitlab", "--tail", "-1"), 2, ("--tail", "-1")),
    Case("logs-unknown-lab", ("logs", "gitlab", "--lab", "nosuch"), 2,
         ("no lab named 'nosuch'", "lab list")),
    Case("exec-unknown-lab", ("exec", "gitlab", "--lab", "nosuch", "--", "true"), 2,
         ("no lab named 'nosuch'",)),
    Case("exec-lab-path", ("exec", "gitlab", "--lab", "../../etc", "--", "true"), 2,
         ("no lab named '../../etc'",)),
    Case("status-unknown-lab", ("status", "nosuch"), 2, ("no lab named 'nosuch'",)),
    Case("down-unknown-lab", ("down", "nosuch"), 2, ("no lab named 'nosuch'",)),
    Case("down-no-labs", ("down",), 2, ("no labs", "lab up scaled")),
    Case("doctor-unknown-lab", ("doctor", "nosuch"), 2, ("no lab named 'nosuch'",)),
    Case("collect-unknown-lab", ("collect", "nosuch"), 2, ("no lab named 'nosuch'",)),
    Case("gc-unknown-option", ("gc", "--everything"), 2, ("--everything",)),
    # --- lab import (its Ruby reading has its own tests) ----------------------------------
    Case("import-no-files", ("import",), 2, ("give at least one gitlab.rb file",)),
    Case("import-bad-node-option", ("import", "--node", "gitaly1"), 2,
         ("--node", "NAME=FILE")),
    Case("import-output-exists", ("import", "{ws}/gitlab.rb", "-o", "{ws}/acme.yaml"), 2,
         ("{ws}/acme.yaml exists", "--force"), files={"gitlab.rb": "external_url 'x'\n"},
         setup=_existing_import_output),
    Case("import-output-is-a-link", ("import", "{ws}/gitlab.rb", "-o", "{ws}/acme.yaml"), 2,
         ("{ws}/acme.yaml exists", "--force"), files={"gitlab.rb": "external_url 'x'\n"},
         setup=lambda ws: (ws / "acme.yaml").symlink_to(ws / "gitlab.rb")),
    Case("import-output-is-an-input",
         ("import", "{ws}/gitlab.rb", "-o", "{ws}/gitlab.rb", "--force"), 2,
         ("{ws}/gitlab.rb is one of the gitlab.rb files", "Choose another -o"),
         files={"gitlab.rb": "external_url 'x'\n"}),
    Case("import-rb-is-a-directory", ("import", "{ws}/gitlab.rb", "{ws}/gitaly1.rb"), 2,
         ("{ws}/gitaly1.rb: is a directory", "gitlab.rb file"),
         files={"gitlab.rb": "external_url 'x'\n"},
         setup=lambda ws: (ws / "gitaly1.rb").mkdir(), needs_ruby=True),
    Case("import-without-ruby", ("import", "{ws}/gitlab.rb"), 5,
         ("`ruby` is not installed", "apt-get install ruby"),
         files={"gitlab.rb": "external_url 'x'\n"}, env={"PATH": "{tmp}/empty-path"}),
    Case("import-binary-rb", ("import", "{ws}/gitlab.rb"), 2, ("{ws}/gitlab.rb", "binary file"),
         files={"gitlab.rb": b"\x00\x01\x02\xff"}, needs_ruby=True),
    Case("import-markup-in-a-key", ("import", "{ws}/gitlab.rb"), 0,
         ("not reproduced", "gitlab_rails['[/bold]']", "gitlab_rails['[red]x']"),
         files={"gitlab.rb": "external_url 'x'\ngitlab_rails['[/bold]'] = 1\n"
                             "gitlab_rails['[red]x'] = 2\n"}, needs_ruby=True),
    # --- a customer's Ruby never runs on this host (lab.spec.rb_reader) -----------------
    ruby_case("rb-system", "system('touch {tmp}/pwned-system')", "{tmp}/pwned-system"),
    ruby_case("rb-backticks", "x = `touch {tmp}/pwned-ticks`", "{tmp}/pwned-ticks"),
    ruby_case("rb-file-write", "File.write('{tmp}/pwned-write', 'x')", "{tmp}/pwned-write"),
    ruby_case("rb-exec-in-hash", "gitlab_rails['x'] = `touch {tmp}/pwned-hash`",
              "{tmp}/pwned-hash"),
    ruby_case("rb-exit", "exit!"),
    ruby_case("rb-endless-loop", "loop {}"),
]


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` but ``skip`` (the lab folder): size, mtime and mode."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in [*dirnames, *filenames]:
            if here / name == skip:
                continue  # the lab folder's own mode and times are its business
            st = (here / name).lstat()
            out[str((here / name).relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def squash(text: str) -> str:
    # Rich wraps long lines wherever it likes; compare without any whitespace.
    return "".join(text.split())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "sentinel.txt").write_text("beside the lab folder\n")
    if case.needs_ruby and shutil.which("ruby") is None:
        pytest.skip("ruby is not installed (import reads gitlab.rb with its parser)")
    for name, content in case.files.items():
        if isinstance(content, bytes):
            (ws / name).write_bytes(content)
        else:
            (ws / name).write_text(content.replace("{tmp}", str(tmp_path)))
    if case.setup is not None:
        case.setup(ws)
    home = tmp_path / "home"
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.replace("{tmp}", str(tmp_path)))
    monkeypatch.chdir(ws)
    before = snapshot(ws, ws / "out")
    monkeypatch.setattr(sys, "argv", ["lab", *(a.replace("{ws}", str(ws)) for a in case.args)])

    code = 0
    try:
        main()  # anything but a SystemExit (a traceback for the user) fails the test here
    except SystemExit as exc:
        code = int(exc.code or 0)

    out = capsys.readouterr()
    text = out.out + out.err
    assert code == case.code, text
    assert "Traceback" not in text
    assert SECRET not in text
    for fragment in case.expect:
        fragment = fragment.replace("{ws}", str(ws)).replace("{tmp}", str(tmp_path))
        assert squash(fragment) in squash(text), text
    assert snapshot(ws, ws / "out") == before  # nothing beside the lab folder changed
    for marker in case.absent:
        assert not Path(marker.replace("{tmp}", str(tmp_path))).exists()
    labs = home / "labs"
    assert not (labs.is_dir() and any(labs.glob("*/manifest.json")))  # no lab was made


def test_the_table_is_broad() -> None:
    assert len(CASES) >= 60
    commands = {c.args[0] for c in CASES}
    assert {"render", "up", "run", "import", "doctor", "logs", "exec", "status",
            "down"} <= commands
