"""YAML files from users, read with positions: every value remembers its file and line.

The lab spec and the scenario loader read their files here, and ``--set`` its values:
capped in size, in depth (refused while parsing, before PyYAML's composer, which
recurses once per level, runs out of stack) and in values (an alias bomb is refused
before it expands), never anything but plain data (``yaml.SafeLoader``), each key
path recorded in ``Origins`` so an error can name the file, the line and the key
(``error_at``). ``--set`` overrides and built-in topologies record where their values
came from too.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab.errors import SpecError
from lab.omnibus.secret_keys import ends_in_secret_word

Path_ = tuple[str, ...]
# Files from users are capped: a spec or scenario is a few KiB, so these refuse
# a huge file or an alias bomb (a few lines that expand into billions of nodes)
# in well under a second instead of eating memory for minutes.
MAX_FILE_BYTES = 128 * 1024
MAX_YAML_NODES = 10_000
# The deepest spec key (nodes.gitaly1.storages.0.path, under lab.spec in a scenario) is
# 7 levels down; 3,000 levels of [[[...]]] were a RecursionError in PyYAML's composer.
MAX_YAML_DEPTH = 32
# Folders of scenario files are walked this deep at most: 1,100 levels were a
# RecursionError in pathlib's rglob.
MAX_FOLDER_DEPTH = 32


@dataclass
class Origins:
    """Where each value came from: (source, line) per key path."""

    places: dict[Path_, tuple[str, int | None]] = field(default_factory=dict)

    def record(self, path: Path_, source: str, line: int | None) -> None:
        self.places[path] = (source, line)

    def of(self, path: Path_) -> tuple[str, int | None]:
        # Fall back to the nearest recorded parent: a key missing from a
        # mapping is reported at the mapping.
        for i in range(len(path), -1, -1):
            if path[:i] in self.places:
                return self.places[path[:i]]
        return ("", None)

    def forget_below(self, path: Path_) -> None:
        for p in [p for p in self.places if p[: len(path)] == path and p != path]:
            del self.places[p]


def dotted_key(path: Path_) -> str:
    return ".".join(path)


def error_at(origins: Origins, path: Path_, message: str) -> SpecError:
    """An error naming the file, line and key where the value at ``path`` came from."""
    source, line = origins.of(path)
    return SpecError(message, source=source, line=line, key=dotted_key(path))


# --- YAML with positions ---------------------------------------------------

class _Budget:
    """How many more YAML nodes one file may expand into (aliases count each time)."""

    def __init__(self, source: str, limit: int = MAX_YAML_NODES) -> None:
        self.source = source
        self.left = limit

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise _too_many(self.source, node)


def _too_many(source: str, node: yaml.Node) -> SpecError:
    return SpecError(f"the {_what(source)} expands into more than {MAX_YAML_NODES} values "
                     "(YAML aliases repeating aliases?); write the values out, a spec or "
                     "scenario needs far fewer", source=source, line=_line(source, node.start_mark))


def _too_deep(source: str, mark: yaml.Mark) -> SpecError:
    return SpecError(f"the {_what(source)} nests more than {MAX_YAML_DEPTH} levels deep "
                     "(lists in lists, mappings in mappings, aliases included); a spec or "
                     "scenario needs fewer than 10", source=source, line=_line(source, mark))


def _what(source: str) -> str:
    return "value" if source.startswith("--set ") else "file"


def _line(source: str, mark: yaml.Mark) -> int | None:
    return None if source.startswith("--set ") else mark.line + 1


class _DepthCappedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses a node nested deeper than ``MAX_YAML_DEPTH``
    before composing it: the composer recurses once per level."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _too_deep(self.source, self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str, source: str) -> yaml.Node | None:
    """``text``'s YAML node tree, refused past ``MAX_YAML_DEPTH`` levels while parsing and
    past ``MAX_YAML_NODES`` values or ``MAX_YAML_DEPTH`` levels once aliases are expanded
    (measured without expanding). YAML errors propagate."""
    loader = _DepthCappedLoader(text, source)
    try:
        root: yaml.Node | None = loader.get_single_node()
    finally:
        loader.dispose()
    if root is not None:
        size, depth = _expanded(root)
        if size > MAX_YAML_NODES:  # an alias bomb is refused before expanding
            raise _too_many(source, root)
        if depth > MAX_YAML_DEPTH:  # aliases of deep nodes inside deep nodes
            raise _too_deep(source, root.start_mark)
    return root


def expanded_size(root: yaml.Node, limit: int = MAX_YAML_NODES) -> int:
    """How many nodes ``root`` becomes once every alias is expanded, counted without expanding
    (each distinct node once, memoized), stopping early past ``limit``."""
    return _expanded(root, limit)[0]


def _expanded(root: yaml.Node, limit: int = MAX_YAML_NODES) -> tuple[int, int]:
    """(nodes, levels) of ``root`` with every alias expanded, each distinct node measured
    once: the walk meets a node first where the file defines it, so it recurses no deeper
    than the file nests (which the loader capped)."""
    seen: dict[int, tuple[int, int]] = {}

    def measure(node: yaml.Node) -> tuple[int, int]:
        known = seen.get(id(node))
        if known is not None:
            return known
        # A cycle (not possible with safe YAML) counts as too big and too deep.
        seen[id(node)] = (limit + 1, MAX_YAML_DEPTH + 1)
        total, deepest = 1, 0
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            size, depth = measure(child)
            total += size
            deepest = max(deepest, depth)
            if total > limit:
                break
        seen[id(node)] = (min(total, limit + 1), deepest + 1)
        return seen[id(node)]

    return measure(root)


def _construct(node: yaml.Node, path: Path_, source: str, origins: Origins,
               budget: _Budget) -> Any:
    budget.spend(node)
    origins.record(path, source, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("a key must be a plain string, not a list or mapping",
                                source=source, line=key_node.start_mark.line + 1,
                                key=dotted_key(path))
            key = str(_scalar(key_node, path, source) if key_node.tag != "tag:yaml.org,2002:str"
                      else key_node.value)
            if key in out:
                raise SpecError(f"duplicate key {key!r}", source=source,
                                line=key_node.start_mark.line + 1, key=dotted_key((*path, key)))
            out[key] = _construct(value_node, (*path, key), source, origins, budget)
            origins.record((*path, key), source, key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*path, str(i)), source, origins, budget)
                for i, v in enumerate(node.value)]
    return _scalar(node, path, source)


def _scalar(node: yaml.Node, path: Path_, source: str) -> Any:
    """A scalar's value as ``yaml.safe_load`` reads it; an empty one (``image:``) is None.

    Built by SafeLoader's constructor itself: re-serializing the node and loading that
    fails for an empty value, which PyYAML writes as a bare document end (``...``).
    A tag plain YAML does not have (``!ruby/sym x``, ``!!int abc``) is an error at its line.
    """
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise SpecError(f"{node.value!r} tagged {node.tag!r} is not a plain YAML value "
                        f"({str(exc).splitlines()[0]}); remove the tag", source=source,
                        line=node.start_mark.line + 1, key=dotted_key(path)) from None


def read_user_file(path: Path, what: str) -> str:
    """A spec or scenario file's text: a regular file, at most ``MAX_FILE_BYTES``, UTF-8.

    Checked before any parsing, so a binary, huge or special file (a FIFO,
    /dev/zero) is refused at once with the file named.
    """
    source = str(path)
    try:
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise SpecError(f"cannot read the {what}: it is {kind}; give a YAML file",
                            source=source)
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read the {what}: {exc.strerror or exc}", source=source) \
            from None
    return user_text(raw, what, source)


def user_text(raw: bytes, what: str, source: str) -> str:
    """``raw`` (at most ``MAX_FILE_BYTES`` + 1 bytes read from the file ``source``) as
    text, or a SpecError naming the file: too big, binary or not UTF-8."""
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"the {what} is larger than {MAX_FILE_BYTES // 1024} KiB, far more than "
                        "a spec or scenario needs; is it the right file?", source=source)
    if b"\0" in raw:
        raise SpecError(f"the {what} is a binary file, not YAML text; is it the right file?",
                        source=source)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"the {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8",
                        source=source, line=line) from None


def files_below(folder: Path, what: str, *, folders: bool = False,
                skip_deeper: bool = False) -> Iterator[Path]:
    """Every entry under ``folder`` that is not a folder itself (files, links, ...; with
    ``folders`` the folders too), found without recursion and without entering linked
    folders (as ``rglob`` in 3.11). A folder nested more than ``MAX_FOLDER_DEPTH`` levels
    down is a SpecError, or with ``skip_deeper`` (a lab folder, where a container writes)
    is not entered; an unreadable one is passed over."""
    todo = [(folder, 0)]
    while todo:
        here, depth = todo.pop()
        try:
            with os.scandir(here) as entries:
                found = [(Path(e.path), e.is_dir(follow_symlinks=False)) for e in entries]
        except OSError:
            continue
        for path, is_dir in sorted(found, reverse=True):
            if not is_dir or folders:
                yield path
            if not is_dir:
                continue
            if depth + 1 < MAX_FOLDER_DEPTH:
                todo.append((path, depth + 1))
            elif not skip_deeper:
                raise SpecError(f"{what} nests folders more than {MAX_FOLDER_DEPTH} levels deep "
                                f"(at {path.relative_to(folder).parts[0]}/...); name a folder "
                                "nearer to the files", source=str(folder))


SPEC_MAPPING = "a lab spec must be a mapping of keys (name, topology, nodes, ...)"


def load_yaml(text: str, source: str, origins: Origins, *,
              not_a_mapping: str = SPEC_MAPPING) -> dict[str, Any]:
    """The file's mapping; ``not_a_mapping`` says what the file should have been (each
    caller reads its own kind of file: a spec, a scenario, a source node's config)."""
    try:
        root = _compose(text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"not valid YAML: {exc.problem or exc}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}", source=source) from None
    if root is None:
        origins.record((), source, None)  # an empty file: its errors still name it
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise SpecError(not_a_mapping, source=source, line=root.start_mark.line + 1)
    data = _construct(root, (), source, origins, _Budget(source))
    assert isinstance(data, dict)
    return data


def record_all(data: Any, path: Path_, source: str, line: int | None, origins: Origins) -> None:
    """Record one origin for ``path`` and everything below it."""
    origins.record(path, source, line)
    if isinstance(data, dict):
        for k, v in data.items():
            record_all(v, (*path, str(k)), source, line, origins)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            record_all(v, (*path, str(i)), source, line, origins)


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_set(assignment: str) -> tuple[str, Any]:
    """``key.path=value`` from the command line -> (key, the value parsed as YAML).

    The value has a file's limits (size, depth, values); text that is not valid YAML
    is taken as it is.
    """
    if "=" not in assignment:
        raise SpecError("expected KEY=VALUE, e.g. --set nodes.gitaly1.secrets=own",
                        source=f"--set {_clipped(assignment)}")
    key, _, raw_value = assignment.partition("=")
    if not raw_value.strip():
        return key, ""
    source = set_source(assignment)
    if len(raw_value.encode(errors="replace")) > MAX_FILE_BYTES:
        raise SpecError(f"the value is larger than {MAX_FILE_BYTES // 1024} KiB; put it in "
                        "a spec file", source=source)
    try:
        root = _compose(raw_value, source)
        if root is None:
            return key, None
        return key, yaml.constructor.SafeConstructor().construct_document(root)
    except (yaml.YAMLError, ValueError, TypeError):
        return key, raw_value


def set_source(assignment: str) -> str:
    """How messages name a ``--set KEY=VALUE``: clipped, and without the value of a key
    that holds a secret (``--set gitaly_token=...``)."""
    key, eq, _ = assignment.partition("=")
    if eq and ends_in_secret_word(key.strip().split(".")[-1]):
        return f"--set {key}=(value not shown: a secret)"
    return f"--set {_clipped(assignment)}"


def _clipped(text: str, width: int = 60) -> str:
    """A command-line argument short enough to name in a message."""
    return text if len(text) <= width else text[: width - 3] + "..."


def apply_set(data: dict[str, Any], key: str, value: Any, origins: Origins, *, source: str,
              line: int | None = None) -> dict[str, Any]:
    """Raw spec data with ``value`` at the dotted ``key``; it and its keys come from
    ``source`` (and ``line``) in later errors."""
    path = tuple(p for p in key.strip().split(".") if p)
    if not path:
        raise SpecError("empty key; expected KEY=VALUE, e.g. --set tls=true", source=source,
                        line=line)
    out = copy.deepcopy(data)
    cursor: dict[str, Any] = out
    for i, part in enumerate(path[:-1]):
        nxt = cursor.get(part)
        if nxt is None:
            nxt = cursor[part] = {}
            origins.record(path[: i + 1], source, line)
        if not isinstance(nxt, dict):
            raise SpecError(f"{dotted_key(path[: i + 1])} is not a mapping, so it has no key "
                            f"{path[i + 1]!r}", source=source, line=line, key=key)
        cursor = nxt
    cursor[path[-1]] = copy.deepcopy(value)
    origins.forget_below(path)
    record_all(value, path, source, line, origins)
    return out
