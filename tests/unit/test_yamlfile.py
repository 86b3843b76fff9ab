"""YAML files from users, read with positions: lines, caps, and where overrides came from."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from lab.errors import SpecError
from lab.spec.yamlfile import (
    MAX_FILE_BYTES,
    MAX_FOLDER_DEPTH,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    Origins,
    apply_set,
    error_at,
    expanded_size,
    files_below,
    load_yaml,
    merge,
    parse_set,
    read_user_file,
)

TEXT = "name: x\nnodes:\n  gitaly1:\n    storages:\n      - default\n      - storage1\n"


def test_every_key_remembers_its_line() -> None:
    origins = Origins()
    data = load_yaml(TEXT, "lab.yaml", origins)
    assert data["nodes"]["gitaly1"]["storages"] == ["default", "storage1"]
    assert origins.of(("name",)) == ("lab.yaml", 1)
    assert origins.of(("nodes", "gitaly1")) == ("lab.yaml", 3)
    assert origins.of(("nodes", "gitaly1", "storages", "1")) == ("lab.yaml", 6)
    # A key that is not there is reported at the nearest mapping that is.
    assert origins.of(("nodes", "gitaly1", "tls")) == ("lab.yaml", 3)
    err = error_at(origins, ("nodes", "gitaly1", "storages", "1"), "bad storage")
    assert str(err) == "lab.yaml:6: nodes.gitaly1.storages.1: bad storage"


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
    ("? [a, b]\n: 1\n", 1, "a key must be a plain string"),
    ("a: [1, 2\n", 2, "not valid YAML"),
    ("- a\n- b\n", 1, "must be a mapping"),
])
def test_bad_yaml_names_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        load_yaml(text, "f.yaml", Origins())
    assert err.value.source == "f.yaml"
    assert err.value.line == line


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    root = yaml.compose(bomb, Loader=yaml.SafeLoader)
    assert expanded_size(root) > MAX_YAML_NODES
    started = time.monotonic()
    with pytest.raises(SpecError, match=f"more than {MAX_YAML_NODES} values"):
        load_yaml(bomb, "bomb.yaml", Origins())
    assert time.monotonic() - started < 5


def test_expanded_size_counts_each_alias_use() -> None:
    root = yaml.compose("a: &a [1, 2]\nb: *a\n", Loader=yaml.SafeLoader)
    # mapping + 2 keys + the list twice (list + 2 items each)
    assert expanded_size(root) == 1 + 2 + 3 + 3


@pytest.mark.parametrize(("content", "message"), [
    (b"\x00\x01binary", "binary file"),
    (b"a: \xff\xfe\n", "not UTF-8"),
    (b"a: 1\n" * (MAX_FILE_BYTES // 5 + 1), "larger than 128 KiB"),
])
def test_read_user_file_refuses_what_is_no_yaml_text(tmp_path: Path, content: bytes,
                                                     message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=message) as err:
        read_user_file(path, "spec file")
    assert err.value.source == str(path)


def test_read_user_file_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="it is a directory"):
        read_user_file(tmp_path, "scenario file")
    assert read_user_file(_write(tmp_path / "ok.yaml", TEXT), "spec file") == TEXT


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_merge_lays_mappings_over_and_replaces_the_rest() -> None:
    base = {"nodes": {"a": {"tls": False, "roles": ["app"]}}, "tls": False}
    over = {"nodes": {"a": {"tls": True, "roles": ["gitaly"]}}, "name": "x"}
    out = merge(base, over)
    assert out == {"nodes": {"a": {"tls": True, "roles": ["gitaly"]}}, "tls": False, "name": "x"}
    assert base["nodes"]["a"]["tls"] is False  # the base is not changed


def test_a_set_override_records_its_own_origin() -> None:
    origins = Origins()
    data = load_yaml(TEXT, "lab.yaml", origins)
    key, value = parse_set("nodes.gitaly1.storages=[only]")
    assert (key, value) == ("nodes.gitaly1.storages", ["only"])
    data = apply_set(data, key, value, origins, source="--set nodes.gitaly1.storages=[only]")
    assert data["nodes"]["gitaly1"]["storages"] == ["only"]
    assert origins.of(("nodes", "gitaly1", "storages", "0"))[0].startswith("--set")
    assert ("nodes", "gitaly1", "storages", "1") not in origins.places  # the old list's
    with pytest.raises(SpecError, match="is not a mapping"):
        apply_set(data, "name.x", 1, origins, source="--set name.x=1")
    with pytest.raises(SpecError, match="expected KEY=VALUE"):
        parse_set("tls")


def test_an_empty_value_is_null_and_an_odd_tag_an_error_at_its_line() -> None:
    # `image:` with nothing after it is everyday YAML: None, as yaml.safe_load reads it
    # (it used to end in a yaml.parser.ParserError traceback).
    origins = Origins()
    data = load_yaml("name: x\nimage:\nnodes:\n  gitaly1:\n", "lab.yaml", origins)
    assert data == {"name": "x", "image": None, "nodes": {"gitaly1": None}}
    assert load_yaml("? \n: 1\n", "lab.yaml", Origins()) == {"None": 1}
    for text, key in (("tls: !foo x\n", "tls: "), ("tls: !!int abc\n", "tls: "),
                      ("!!python/name:os.system x: 1\n", "")):
        with pytest.raises(SpecError, match=rf"^lab\.yaml:1: {key}'.*' tagged .* remove the tag"):
            load_yaml(text, "lab.yaml", Origins())


def test_an_empty_file_is_named_in_errors_about_what_it_lacks() -> None:
    origins = Origins()
    assert load_yaml("# nothing yet\n", "empty.yaml", origins) == {}
    assert str(error_at(origins, ("nodes",), "a lab needs nodes")) == \
        "empty.yaml: nodes: a lab needs nodes"


def test_deep_nesting_is_refused_while_parsing_at_its_line() -> None:
    # 3,000 levels were a RecursionError traceback in PyYAML's composer.
    text = "name: x\nnodes: " + "[" * 3000 + "]" * 3000 + "\n"
    with pytest.raises(SpecError, match=f"nests more than {MAX_YAML_DEPTH} levels") as err:
        load_yaml(text, "deep.yaml", Origins())
    assert (err.value.source, err.value.line) == ("deep.yaml", 2)
    block = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200))
    with pytest.raises(SpecError, match="nests more than"):
        load_yaml(block, "deep.yaml", Origins())
    ok = "a: " + "[" * (MAX_YAML_DEPTH - 2) + "]" * (MAX_YAML_DEPTH - 2) + "\n"
    assert load_yaml(ok, "ok.yaml", Origins())["a"]


def test_aliases_of_deep_nodes_inside_deep_nodes_are_refused_before_expanding() -> None:
    # Each anchor nests 20 levels (within the cap), each holding the one before: a few
    # values, yet 60 levels once expanded (800 with 40 anchors: a RecursionError while
    # building the value).
    lines = ["a0: &a0 " + "[" * 20 + "x" + "]" * 20]
    lines += [f"a{i}: &a{i} " + "[" * 20 + f"*a{i - 1}" + "]" * 20 for i in range(1, 3)]
    with pytest.raises(SpecError, match="nests more than"):
        load_yaml("\n".join(lines) + "\n", "alias.yaml", Origins())


def test_set_values_have_the_limits_of_a_file() -> None:
    with pytest.raises(SpecError, match="nests more than") as err:
        parse_set("tls=" + "[" * 3000 + "]" * 3000)
    assert err.value.source.startswith("--set tls=[[[")
    assert len(err.value.source) < 80  # not 6,000 brackets
    assert err.value.line is None
    bomb = "{a: &a [x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "}"
    with pytest.raises(SpecError, match=f"expands into more than {MAX_YAML_NODES} values"):
        parse_set("x=" + bomb)
    with pytest.raises(SpecError, match="larger than 128 KiB"):
        parse_set("x=" + "a" * (MAX_FILE_BYTES + 1))
    # What is not plain YAML stays text, as before (no traceback for a tag).
    assert parse_set("image=!!int abc") == ("image", "!!int abc")
    assert parse_set("x=[a, {b: 1}]") == ("x", ["a", {"b": 1}])


def test_folder_walks_stop_at_a_depth_limit_and_never_enter_links(tmp_path: Path) -> None:
    shallow = tmp_path / "ok" / "a" / "b"
    shallow.mkdir(parents=True)
    (shallow / "s.yaml").write_text("x")
    (tmp_path / "ok" / "top.yaml").write_text("x")
    (tmp_path / "ok" / "loop").symlink_to(tmp_path / "ok")
    found = sorted(p.relative_to(tmp_path / "ok").as_posix()
                   for p in files_below(tmp_path / "ok", "the folder"))
    assert found == ["a/b/s.yaml", "loop", "top.yaml"]
    # 1,100 levels were a RecursionError in pathlib's rglob; made without recursion here.
    fd = os.open(tmp_path, os.O_RDONLY)
    os.mkdir("deep", dir_fd=fd)
    for _ in range(1100):
        nxt = os.open("deep", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
        os.mkdir("deep", dir_fd=fd)
    os.close(fd)
    try:
        with pytest.raises(SpecError, match=f"more than {MAX_FOLDER_DEPTH} levels deep") as err:
            list(files_below(tmp_path / "deep", "the scenario folder"))
        assert err.value.source == str(tmp_path / "deep")
    finally:
        remove_deep(tmp_path / "deep")  # shutil.rmtree (pytest's cleanup) recurses too


def remove_deep(top: Path) -> None:
    """Remove a chain of nested "deep" folders from the top down, without recursion and
    with at most two folders open: each round moves the next level up beside ``top``,
    removes the emptied one and renames the moved one (holding an fd per level needed
    1,100 of them, past the 1,024 many machines allow a process)."""
    parent = os.open(top.parent, os.O_RDONLY)
    try:
        while True:
            level = os.open(top.name, os.O_RDONLY, dir_fd=parent)
            try:
                below = "deep" in os.listdir(level)
                if below:
                    os.rename("deep", "deep-below", src_dir_fd=level, dst_dir_fd=parent)
            finally:
                os.close(level)
            os.rmdir(top.name, dir_fd=parent)
            if not below:
                return
            os.rename("deep-below", top.name, src_dir_fd=parent, dst_dir_fd=parent)
    finally:
        os.close(parent)


def test_a_file_that_is_no_mapping_is_named_for_what_it_should_be(tmp_path: Path) -> None:
    from lab.scenario.load import parse_scenario
    from lab.spec.labspec import SpecRequest, resolve
    from lab.spec.source_reader import read_gitlab_yml

    with pytest.raises(SpecError, match="a scenario must be a mapping"):
        parse_scenario("- a\n", "sc.yaml")
    (tmp_path / "gitlab.yml").write_text("- a\n")
    with pytest.raises(SpecError, match="a gitlab\\.yml must be a mapping"):
        read_gitlab_yml(tmp_path / "gitlab.yml")
    spec = tmp_path / "spec.yaml"
    spec.write_text("- a\n")
    with pytest.raises(SpecError, match="a lab spec must be a mapping"):
        resolve(SpecRequest(file=spec))
