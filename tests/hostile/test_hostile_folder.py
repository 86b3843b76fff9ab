"""Hostile lab folders and state folders: nothing outside a lab folder the toolkit made is
ever deleted, overwritten or read into a bundle, and a tampered state folder gives a clear
message, never a traceback.

Every case runs the real CLI; the engine is faked empty (nothing here needs Docker), and
the cases about a user without root run the CLI as ``nobody`` through ``setpriv`` when the
tests run as root (as CI does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.cli.main import main
from lab.engine.images import image_for
from lab.spec.labspec import SpecRequest, resolve
from lab.store import layout, ownership, state
from lab.store.lab_folder import LabFolder
from lab.store.labdir import write_lab
from lab.store.layout import LAB_ID, LAST_RUN_JSON

HOST_SECRET = "host-file-content-7f3a9c"


def snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``root`` (but ``skip``): size, mtime and mode, links not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in [*dirnames, *filenames]:
            if skip is not None and here / name == skip:
                continue
            st = (here / name).lstat()
            out[str((here / name).relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder and an empty fake engine (every listing empty, nothing to remove)."""
    from lab.engine import docker as dk

    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    for kind in ("containers", "networks", "volumes"):
        monkeypatch.setattr(dk, kind, lambda labels: [])
    monkeypatch.setattr(dk, "image_present", lambda image: True)
    return tmp_path / "home"


def make_lab(name: str) -> Path:
    """A lab folder in the state folder as `lab up` leaves it (nothing started)."""
    lab = resolve(SpecRequest(topology="scaled", flavor="sim", name=name))
    rendered = write_lab(lab, state.lab_dir(name), image=image_for(lab), home=ownership.home_id())
    ownership.mark_made(name, rendered.owner["io.gitlab-testlab.id"])
    LabFolder(rendered.path).save_spec(lab)
    return rendered.path


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["lab", *args])
    code = 0
    try:
        main()  # anything but SystemExit is a traceback for the user: the test fails here
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return code, text


def squash(text: str) -> str:
    return "".join(text.split())


def user_folder(where: Path) -> Path:
    """A folder of the user's that looks like a lab folder to anyone trusting manifest.json."""
    where.mkdir(parents=True)
    (where / "manifest.json").write_text(json.dumps({"toolkit": "gitlab-testlab 0.1.0",
                                                     "name": "victim", "nodes": {}}))
    (where / "precious.txt").write_text("the user's own work\n")
    (where / "sub").mkdir()
    (where / "sub" / "more.txt").write_text("more\n")
    return where


# --- issue 24 #1: `lab down --purge` deletes only a folder the toolkit made --------------

@pytest.mark.parametrize("target", ["user-folder", "real-lab-elsewhere"])
def test_down_purge_of_a_link_in_labs_deletes_nothing(
        home: Path, tmp_path: Path, target: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    if target == "user-folder":
        victim = user_folder(tmp_path / "mine")
    else:
        real = make_lab("real")
        victim = tmp_path / "elsewhere"
        shutil.move(str(real), victim)
    state.labs_dir().mkdir(parents=True, exist_ok=True)
    link = state.labs_dir() / "linked"
    link.symlink_to(victim)
    before = snapshot(tmp_path, skip=home)
    code, text = run_cli(monkeypatch, capsys, "down", "linked", "--purge")
    assert code == 2, text
    assert "symbolic link" in text
    assert "nothing was touched" in text
    assert snapshot(tmp_path, skip=home) == before
    assert link.is_symlink()
    # Not listed as a lab, so `lab down` with no name never picks it either.
    assert "linked" not in state.lab_names()


def test_purge_refuses_a_folder_without_the_toolkits_marks(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A real folder in labs/ with a manifest.json anyone can write, but no lab id.
    victim = user_folder(state.labs_dir() / "fake")
    (victim / ".lab").mkdir()
    (victim / ".lab" / "spec.json").write_text(json.dumps({"topology": "scaled",
                                                           "name": "fake"}))
    before = snapshot(victim)
    code, text = run_cli(monkeypatch, capsys, "down", "fake", "--purge")
    assert code == 2, text
    assert squash("not a lab folder this toolkit made") in squash(text)
    assert snapshot(victim) == before


def test_purge_still_removes_its_own_lab_folder(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = make_lab("own")
    code, text = run_cli(monkeypatch, capsys, "down", "own", "--purge")
    assert code == 0, text
    assert not path.exists()
    assert not ownership.made_record("own").exists()


def test_purge_of_its_own_folder_whose_lab_dir_was_deleted(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # .lab/ (with the lab id) deleted by hand: the record beside the folder still marks it.
    path = make_lab("bare")
    shutil.rmtree(path / ".lab")
    code, text = run_cli(monkeypatch, capsys, "down", "bare", "--purge")
    assert code == 0, text
    assert not path.exists()


# --- issue 24 #2: render --force --regenerate removes only files it wrote ----------------

def test_render_force_regenerate_keeps_the_users_files_and_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "nodes" / "web").mkdir(parents=True)
    out.chmod(0o755)
    (out / "manifest.json").write_text(json.dumps({
        "toolkit": "gitlab-testlab 0.1.0", "name": "scaled",
        "nodes": {"web": {"roles": ["app"], "secrets_policy": "shared"}}}))
    (out / "nodes" / "web" / "gitlab.rb").write_text("# the user's web node\n")
    (out / "nodes" / "web" / "gitlab-secrets.json").write_text('{"mine": 1}\n')
    code, text = run_cli(monkeypatch, capsys, "render", "scaled", "-o", str(out), "--force",
                         "--regenerate")
    assert code == 0, text
    assert (out / "nodes" / "web" / "gitlab.rb").read_text() == "# the user's web node\n"
    assert (out / "nodes" / "web" / "gitlab-secrets.json").read_text() == '{"mine": 1}\n'
    assert out.stat().st_mode & 0o777 == 0o755


def test_render_removes_what_it_wrote_for_a_node_that_is_gone(tmp_path: Path) -> None:
    # The record is what allows a removal: a node dropped from the lab loses its files.
    out = tmp_path / "out"
    three = resolve(SpecRequest(topology="scaled", flavor="sim",
                                sets=("nodes.gitaly2.roles=[gitaly]",
                                      "nodes.gitaly2.storages=[storage9]")))
    write_lab(three, out, image="sim:test")
    assert (out / "nodes" / "gitaly2" / "gitlab.rb").is_file()
    (out / "nodes" / "gitaly2" / "notes.txt").write_text("the user's\n")
    write_lab(resolve(SpecRequest(topology="scaled", flavor="sim")), out, image="sim:test")
    assert not (out / "nodes" / "gitaly2" / "gitlab.rb").exists()
    assert (out / "nodes" / "gitaly2" / "notes.txt").read_text() == "the user's\n"


# --- issue 24 #3: every -o that names a file needs --force to replace one ------------------

def test_collect_output_exists_needs_force(home: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep\n")
    code, text = run_cli(monkeypatch, capsys, "collect", "nosuch", "-o", str(existing))
    assert code == 2, text
    assert squash(f"{existing} exists") in squash(text)
    assert "--force" in text
    assert existing.read_text() == "keep\n"


# --- issue 24 #5: bundle reads of lab-folder files never follow links ---------------------

def test_collect_never_follows_a_link_in_the_lab_state_folder(home: Path,
                                                              tmp_path: Path) -> None:
    from lab.engine.redaction import Redaction
    from lab.support.collect import Bundle, _scenario_results

    path = make_lab("bundled")
    host_file = tmp_path / "host-file"
    host_file.write_text(HOST_SECRET + "\n")
    (path / LAST_RUN_JSON).unlink(missing_ok=True)
    (path / LAST_RUN_JSON).symlink_to(host_file)
    bundle = Bundle(Redaction([]))
    assert not _scenario_results(bundle, path)
    assert all(HOST_SECRET not in text for text in bundle.files.values())


@pytest.mark.parametrize("rel", [".lab/secrets.json", ".lab/spec.json", ".lab/id",
                                 "manifest.json"])
def test_lab_folder_reads_never_follow_a_link(home: Path, tmp_path: Path, rel: str) -> None:

    path = make_lab("linked-files")
    host_file = tmp_path / "host.json"
    host_file.write_text(json.dumps({"gitaly_token": HOST_SECRET}))
    (path / rel).unlink()
    (path / rel).symlink_to(host_file)
    folder = LabFolder(path)
    readers: dict[str, Any] = {".lab/secrets.json": folder.secrets, ".lab/spec.json": folder.lab,
                               ".lab/id": lambda: folder.id, "manifest.json": folder.manifest}
    try:
        got = readers[rel]()
    except Exception as exc:  # a clear refusal is fine, a read is not
        got = str(exc)
    assert HOST_SECRET not in repr(got)


# --- issue 24 #9: a tampered state folder: clear messages, and `lab down` still works ---------

@pytest.mark.parametrize("content", ["null", "123", '"text"', "[1, 2]"])
def test_spec_json_not_a_mapping(home: Path, content: str, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = make_lab("spoiled")
    (path / ".lab" / "spec.json").write_text(content)
    code, text = run_cli(monkeypatch, capsys, "status", "spoiled")
    assert code == 2, text
    assert squash("spec.json is missing or damaged") in squash(text)
    assert "lab down spoiled --purge" in text
    code, text = run_cli(monkeypatch, capsys, "down", "spoiled", "--purge")
    assert code == 0, text
    assert not path.exists()


@pytest.mark.parametrize("data", [{"gitaly_token": 123, "admin_token": "x", "shared": {}},
                                  {"gitaly_token": "x", "admin_token": "y", "shared": {"a": 5}},
                                  {"gitaly_token": "x", "admin_token": "y", "shared": []},
                                  [1, 2, 3], 7])
def test_secrets_json_with_numbers(home: Path, data: object, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = make_lab("numbers")
    secret = LabFolder(path).secrets()
    assert secret is not None
    (path / ".lab" / "secrets.json").write_text(json.dumps(data))
    for args in (("status", "numbers"), ("logs", "gitlab", "--lab", "numbers")):
        code, text = run_cli(monkeypatch, capsys, *args)
        assert code == 2, text
        assert squash("secrets.json is damaged") in squash(text)
        assert secret.gitaly_token not in text
    code, text = run_cli(monkeypatch, capsys, "down", "numbers")
    assert code == 0, text
    assert secret.gitaly_token not in text


@pytest.mark.parametrize("suffix", ["lock", "start"])
@pytest.mark.parametrize("target", ["loop", "file"])
def test_a_linked_lock_file_does_not_break_down(home: Path, tmp_path: Path, suffix: str,
                                                target: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    make_lab("locked")
    lock = state.labs_dir() / f".locked.{suffix}"
    victim = tmp_path / "victim.txt"
    victim.write_text("not a lock\n")
    if target == "loop":
        lock.symlink_to(lock)  # Too many levels of symbolic links
    else:
        lock.symlink_to(victim)
    code, text = run_cli(monkeypatch, capsys, "down", "locked")
    assert code == 0, text
    assert victim.read_text() == "not a lock\n"


def test_a_stale_up_marker_naming_pid_1_is_not_a_running_start(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Left by a `lab up` that ran as PID 1 in a container sharing the state folder.
    path = make_lab("stale")
    (path / layout.UP_MARKER).write_text("1\n")
    code, text = run_cli(monkeypatch, capsys, "down", "stale")
    assert code == 0, text
    assert "PID 1" not in text
    assert not (path / layout.UP_MARKER).exists()


def test_up_marker_names_one_process_not_its_pid_number(home: Path) -> None:
    path = make_lab("marked")
    state.write_up_marker(path)
    assert not state.interrupted_up(path)  # this process, alive
    pid, started, _verb = (path / layout.UP_MARKER).read_text().split()
    assert int(pid) == os.getpid()
    (path / layout.UP_MARKER).write_text(f"{pid} {int(started) + 1} up\n")  # same PID, not it
    assert state.interrupted_up(path)


# --- as a user without root ---------------------------------------------------------------
# For real where it can be: the CLI as `nobody` (setpriv) when the tests run as root and that
# user can import the toolkit, else as this user when it is not root. Otherwise (root, with
# Python under a folder `nobody` cannot read) the CLI runs in this process with the file
# system calls refusing, for the folder in question, what the kernel refuses a user without
# root: EACCES from stat/open/mkdir below an unsearchable folder, from listing an unreadable
# one.

NOBODY = 65534
CLI = [sys.executable, "-c", "from lab.cli.main import main; main()"]


def _env(ws: Path) -> dict[str, str]:
    return {**os.environ, "LAB_HOME": str(ws / "home"), "HOME": str(ws), "COLUMNS": "250",
            "DOCKER_HOST": "unix:///nonexistent/docker.sock",
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _nonroot_cli(ws: Path) -> list[str] | None:
    if os.getuid() != 0:
        return CLI
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    cli = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *CLI]
    probe = subprocess.run([*cli[:-2], "-c", "import click, lab.cli.main"], env=_env(ws),
                           capture_output=True, timeout=60, check=False, cwd=ws)
    return cli if probe.returncode == 0 else None


class NonRoot:
    """Runs the CLI as a user without root (see above) in a workspace that user owns."""

    def __init__(self, ws: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
        self.ws = ws
        self.cli = _nonroot_cli(ws)
        self._mp = monkeypatch
        self._capsys = capsys
        self.unsearchable: list[Path] = []
        self.unreadable: list[Path] = []

    def folder(self, rel: str, mode: int) -> Path:
        path = self.ws / rel
        path.mkdir(parents=True)
        if os.getuid() == 0:
            for p in (path, *path.parents):
                if p == self.ws.parent:
                    break
                os.chown(p, NOBODY, NOBODY)
        path.chmod(mode)
        if not mode & 0o100:
            self.unsearchable.append(path)
        if not mode & 0o400:
            self.unreadable.append(path)
        return path

    def run(self, *args: str) -> tuple[int, str]:
        if self.cli is not None:
            proc = subprocess.run([*self.cli, *args], capture_output=True, text=True,
                                  cwd=self.ws, env=_env(self.ws), timeout=120, check=False)
            text = proc.stdout + proc.stderr
            assert "Traceback" not in text, text
            return proc.returncode, text
        for key, value in _env(self.ws).items():
            self._mp.setenv(key, value)
        self._mp.chdir(self.ws)
        self._refuse_as_the_kernel_would()
        return run_cli(self._mp, self._capsys, *args)

    def _refuse_as_the_kernel_would(self) -> None:
        def denied(path: Any) -> bool:
            try:
                p = Path(os.fsdecode(path)).absolute()
            except TypeError:
                return False  # a file descriptor
            return any(d in p.parents for d in self.unsearchable)

        def unlisted(path: Any) -> bool:
            return denied(path) or Path(os.fsdecode(path)).absolute() in self.unreadable

        def guard(real: Any, test: Any) -> Any:
            def call(path: Any, *a: Any, **kw: Any) -> Any:
                if kw.get("dir_fd") is None and test(path):
                    raise PermissionError(13, "Permission denied", os.fsdecode(path))
                return real(path, *a, **kw)
            return call

        for name in ("stat", "lstat", "open", "mkdir"):
            self._mp.setattr(os, name, guard(getattr(os, name), denied))
        for name in ("listdir", "scandir"):
            self._mp.setattr(os, name, guard(getattr(os, name), unlisted))


@pytest.fixture
def nonroot(monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str]) -> Iterator[NonRoot]:
    ws = Path(os.environ.get("TMPDIR", "/tmp")) / f"lab-nonroot-{os.getpid()}-{os.urandom(4).hex()}"
    ws.mkdir(mode=0o755)
    if os.getuid() == 0:
        os.chown(ws, NOBODY, NOBODY)
    try:
        yield NonRoot(ws, monkeypatch, capsys)
    finally:
        monkeypatch.undo()
        for dirpath, dirnames, _ in os.walk(ws):
            for d in dirnames:
                if not (Path(dirpath) / d).is_symlink():
                    (Path(dirpath) / d).chmod(0o755)
        shutil.rmtree(ws)


def test_nonroot_render_under_an_unsearchable_folder(nonroot: NonRoot) -> None:
    locked = nonroot.folder("locked", 0o600)
    code, text = nonroot.run("render", "scaled", "-o", str(locked / "out"))
    assert code == 2, text
    assert "Permission denied" in text
    assert "choose a folder you can read" in text


def test_nonroot_import_under_an_unsearchable_folder(nonroot: NonRoot) -> None:
    locked = nonroot.folder("locked", 0o600)
    code, text = nonroot.run("import", str(nonroot.ws / "gitlab.rb"), "-o",
                             str(locked / "acme.yaml"))
    assert code == 2, text
    assert "Permission denied" in text
    assert "for -o" in text


def test_nonroot_list_with_an_unreadable_labs_folder(nonroot: NonRoot) -> None:
    nonroot.folder("home/labs", 0o300)
    code, text = nonroot.run("list")
    assert code == 2, text
    assert "cannot read the state folder" in text
    assert "Permission denied" in text


def test_bundle_of_a_lab_has_no_linked_host_file(home: Path, tmp_path: Path) -> None:
    """The whole bundle, through `collect`, of a lab whose last-run.json is a link."""
    from lab.engine.redaction import Redaction
    from lab.support.collect import Bundle, _lab_files

    path = make_lab("whole")
    host_file = tmp_path / "host-file"
    host_file.write_text(HOST_SECRET)
    (path / "nodes" / "gitlab" / "extra.txt").symlink_to(host_file)
    bundle = Bundle(Redaction([]))
    _lab_files(bundle, path)
    assert all(HOST_SECRET not in text for text in bundle.files.values())
    assert (path / LAB_ID).is_file()
