"""Reading a gitlab.rb statically: Ruby's own parser, never Ruby's evaluator.

A customer's file is data: it is never run on this host. Ripper
(``read_gitlab_rb.rb`` beside this module) reads the file and takes only literal
settings; any other statement (``system(...)``, a loop, a variable) is listed as
not reproduced with its line, and a syntax error names file and line. The
importer and doctor both read files through here.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.engine.run import run
from lab.errors import EngineError, SpecError, ToolMissing

READER = Path(__file__).resolve().parent / "read_gitlab_rb.rb"
OMNIBUS_CONFIG_ENV = "GITLAB_OMNIBUS_CONFIG"
# A gitlab.rb is a few hundred lines; anything far bigger is not one.
MAX_BYTES = 1024 * 1024
READ_TIMEOUT = 20.0


@dataclass(frozen=True)
class RbFile:
    settings: dict[str, Any]
    skipped: tuple[tuple[int, str], ...]  # (line, statement) not read: Ruby code


def _parse(text: str, name: str, ruby: str) -> RbFile:
    if shutil.which(ruby) is None:
        raise ToolMissing(ruby, f"`{ruby}` is not installed: import and doctor read gitlab.rb "
                          "with Ruby's own parser (it is parsed, never run); install it "
                          "(apt-get install ruby)")
    try:
        # Through the toolkit's one runner; bytes in: the file is UTF-8 whatever this
        # host's locale is. With check=False it raises only when Ruby runs too long.
        proc = run([ruby, "--disable-gems", str(READER), name], input=text.encode(),
                   timeout=READ_TIMEOUT, check=False)
    except EngineError:
        raise SpecError(f"reading it took over {READ_TIMEOUT:.0f} s; is it a gitlab.rb?",
                        source=name) from None
    stdout, stderr = proc.stdout, proc.stderr
    if proc.returncode != 0:
        raise _ruby_error(name, stderr or stdout)
    try:
        data = json.loads(stdout)
    except ValueError:
        raise SpecError("reading it gave no settings", source=name) from None
    skipped = tuple((int(row.get("line") or 0), str(row.get("text") or ""))
                    for row in data.get("skipped", []))
    return RbFile(dict(data.get("settings") or {}), skipped)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_rb(path: Path, *, ruby: str = "ruby", omnibus_config: str = "") -> RbFile:
    """The literal settings of one gitlab.rb, read without running it.

    ``omnibus_config`` (GITLAB_OMNIBUS_CONFIG) is read first and the file wins, as
    Omnibus applies them. SpecError names file and line for a file that is not Ruby.
    """
    if not path.is_file():
        what = "no such file" if not path.exists() else \
            "is a directory" if path.is_dir() else "is not a regular file"
        raise SpecError(f"{what}; give the node's gitlab.rb file", source=str(path))
    if path.stat().st_size > MAX_BYTES:
        raise SpecError(f"larger than {MAX_BYTES // 1024} KiB; is it a gitlab.rb?",
                        source=str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror}", source=str(path)) from None
    return parse_rb(raw, str(path), ruby=ruby, omnibus_config=omnibus_config)


def parse_rb(raw: bytes, name: str, *, ruby: str = "ruby", omnibus_config: str = "") -> RbFile:
    """``read_rb`` of a file's bytes, for a caller that reads the file its own way (a lab
    folder's, never through a link: lab.store.lab_folder); ``name`` names it in errors."""
    if len(raw) > MAX_BYTES:
        raise SpecError(f"larger than {MAX_BYTES // 1024} KiB; is it a gitlab.rb?", source=name)
    if b"\0" in raw:
        raise SpecError("a binary file, not a gitlab.rb; is it the right file?", source=name)
    text = raw.decode(errors="replace")
    main = _parse(text, name, ruby)
    if not omnibus_config.strip():
        return main
    env = _parse(omnibus_config, OMNIBUS_CONFIG_ENV, ruby)
    skipped = tuple((0, f"{OMNIBUS_CONFIG_ENV}: {t}") for _, t in env.skipped) + main.skipped
    return RbFile(_merge(env.settings, main.settings), skipped)


_WHERE_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):\s*(?P<msg>.*)$")


def _ruby_error(name: str, output: str) -> SpecError:
    lines = output.strip().splitlines()
    for i, ln in enumerate(lines):
        m = _WHERE_RE.match(ln)
        if m and m["file"] == name:
            detail = "\n".join([m["msg"], *lines[i + 1:]]).strip()
            return SpecError(f"not valid Ruby: {detail}", source=name, line=int(m["line"]))
    return SpecError(f"not valid Ruby: {' '.join(lines).strip() or 'ruby failed'}", source=name)
