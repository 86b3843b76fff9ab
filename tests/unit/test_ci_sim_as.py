""".ci/sim-as, which names the sim image as an Omnibus release for CI's non-root run:
never over an image that has the name already, and the name taken away only while it
still points at the sim. A fake `docker` on PATH keeps names in a folder (no engine)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "sim-as"
TAG = "gitlab/gitlab-ce:19.3.0-ce.0"
SIM = "gitlab-testlab/sim:abc"

# Names are files in $IMAGES (slashes and colons made "_") holding the image id; every
# call is appended to $IMAGES/calls.
FAKE_DOCKER = """#!/usr/bin/env bash
set -eu
echo "$*" >> "$IMAGES/calls"
f() { printf '%s/%s' "$IMAGES" "$(printf '%s' "$1" | tr '/:' '__')"; }
case "$1 $2" in
  "image inspect")
    name=${!#}
    [ -f "$(f "$name")" ] || exit 1
    cat "$(f "$name")" ;;
  "tag $2") cp "$(f "$2")" "$(f "$3")" ;;
  "rmi $2") rm "$(f "$2")" ;;
esac
"""


def _run(tmp_path: Path, images: dict[str, str], *cmd: str) -> tuple[int, list[str], str]:
    store = tmp_path / "images"
    store.mkdir()
    for name, image_id in images.items():
        (store / name.replace("/", "_").replace(":", "_")).write_text(image_id + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "IMAGES": str(store)}
    res = subprocess.run(["bash", str(SCRIPT), TAG, SIM, *cmd], env=env,
                         capture_output=True, text=True, timeout=30, check=False)
    calls = (store / "calls").read_text().splitlines() if (store / "calls").exists() else []
    return res.returncode, calls, res.stderr


def test_the_name_is_made_for_the_command_and_taken_away(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code, calls, _ = _run(tmp_path, {SIM: "sha256:sim"}, "touch", str(marker))
    assert code == 0
    assert marker.exists()
    assert f"tag {SIM} {TAG}" in calls
    assert calls[-1] == f"rmi {TAG}"
    assert not (tmp_path / "images" / "gitlab_gitlab-ce_19.3.0-ce.0").exists()


def test_the_commands_status_is_the_scripts(tmp_path: Path) -> None:
    code, calls, _ = _run(tmp_path, {SIM: "sha256:sim"}, "false")
    assert code == 1
    assert calls[-1] == f"rmi {TAG}"  # removed after a failure too


def test_an_image_with_the_name_already_is_left_alone(tmp_path: Path) -> None:
    # The real release on this host: tagging would move its name to the sim, and the
    # removal afterwards would leave it nameless.
    marker = tmp_path / "ran"
    code, calls, err = _run(tmp_path, {SIM: "sha256:sim", TAG: "sha256:real"},
                            "touch", str(marker))
    assert code == 3
    assert not marker.exists()
    assert not [c for c in calls if c.startswith(("tag", "rmi"))]
    assert (tmp_path / "images" / "gitlab_gitlab-ce_19.3.0-ce.0").read_text() == \
        "sha256:real\n"
    assert f"{TAG} is already on this engine" in err


def test_a_name_that_moved_meanwhile_is_not_removed(tmp_path: Path) -> None:
    # Something (a pull, a load) gave the name to another image while the command ran.
    moved = f'printf "sha256:pulled\\n" > "$IMAGES/{TAG.replace("/", "_").replace(":", "_")}"'
    code, calls, _ = _run(tmp_path, {SIM: "sha256:sim"}, "bash", "-c", moved)
    assert code == 0
    assert not [c for c in calls if c.startswith("rmi")]
