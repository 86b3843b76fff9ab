"""PID 1 of a sim node (/assets/wrapper): as the Omnibus image's wrapper, then run and watch.

The Omnibus wrapper (docker/assets/wrapper, later init-container: docs/fidelity.md; `set -e`)
generates ssh host keys into /etc/gitlab, starts runsvdir with only `sshd`, then
runs `gitlab-ctl reconfigure`; a failed reconfigure ends the container. The
reconfigure (Chef) chowns /etc/gitlab to root:root 0775 unless
`manage_storage_directories['manage_etc'] = false`, rewrites gitlab-secrets.json
with every section it knows (generating the missing ones: lab.omnibus.gitlab_secrets),
stores the initial root password on first bootstrap (Dialect.initial_root_password),
and omnibus-ctl prints `gitlab Reconfigured!` when it succeeded. The sim does each of these, for the
release named in /RELEASE (written when the sim stands in for an Omnibus tag).
Signals from gitlab-ctl: SIGUSR1 = restart services from the current runtime
config (reconfigure rewrites it first), SIGTERM = stop.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import secrets as _random
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection
from typing import Any

from lab.omnibus import dialect, directories, gitlab_secrets, sim_node
from lab.omnibus.eras import RECONFIGURED
from lab.omnibus.release import GITALY_RESTARTS_ON_SHELL_SECRET, VERSION_ENV, Version
from lab.omnibus.source_layout import GITLAB_YML, INSTALL_ENV
from labsim.common import handover_server, runstate, simconfig, sourceconfig
from labsim.praefect import pure as praefect_pure

# Run as modules of this package (the image's PYTHONPATH holds it), as the wrapper runs this one.
PROGRAMS = {"gitaly": "labsim.gitaly.gitaly_server", "web": "labsim.web.app_server",
            "praefect": "labsim.praefect.server", "postgresql": "labsim.praefect.postgres"}
# gitlab-ctl's module: its reconfigure runs in a fork of PID 1 (labsim.common.handover).
CTL_PROGRAM = "labsim.node.ctl"
# Stands in for OpenSSH, which the wrapper links into runit before reconfigure.
SSHD = [sys.executable, "-c", "import signal; signal.pause()"]
RELEASE = "/RELEASE"
ETC = "/etc/gitlab"
BOOTSTRAPPED = os.path.join(simconfig.STATE_DIR, "bootstrapped")
STATE = runstate.STATE
STOPPED = runstate.STOPPED
# Written by `gitlab-ctl reconfigure` before it signals: only these services restart.
RESTART_ONLY = os.path.join(simconfig.RUN_DIR, "restart-only.json")
# After a service restarted, its fork server (labsim.node.spare) starts this much later, so
# the new process has the CPU first. Only restarted services get one: a lab that is never
# changed pays nothing for them.
SPARE_AFTER = 0.3
# How long a fork server may take to say its new process's PID before the service is
# started the slow way (a fork takes milliseconds).
SPARE_ANSWER_SECONDS = 5.0
# PID 1's loop wakes for what it acts on (a signal from gitlab-ctl, a child's exit by
# SIGCHLD, a gitlab-ctl connection) and at what it has due (``next_tick``): while services
# come up, every UP_TICK to ask whether they accept connections (``mark_up``); otherwise
# once a second, a safety net. It used to wake 20 times a second whatever happened: 1-3 ms
# of CPU a second per idle node, which a run of many labs on two cores paid.
UP_TICK = 0.05
IDLE_TICK = 1.0
# runit's pace: a service that exits is started again, but not within a second of its start.
RESTART_AFTER = 1.0


def log(message: str) -> None:
    simconfig.log("wrapper", message)


def run_ctl(argv: list[str]) -> int:
    """gitlab-ctl's command in the fork made for it; named, as every program PID 1 runs
    (gitlab-ctl's reconfigure imports this module)."""
    code: int = importlib.import_module(CTL_PROGRAM).run(argv)
    return code


def program_of(service: str) -> str:
    """The module that runs ``service`` (the web server's runit name varies by release)."""
    return PROGRAMS.get(service, PROGRAMS["web"])


def web_service() -> str:
    """The runit name of the app's web server in this release (Dialect.default_web_server)."""
    return dialect.dialect_for(release()).default_web_server


def enabled(node: dict[str, Any]) -> list[str]:
    return runstate.enabled(node, web_service())


def restarts_for(old: dict[str, Any] | None, new: dict[str, Any], version: Version) -> list[str]:
    """The services a reconfigure restarts: those whose rendered configuration changed.

    As Omnibus' cookbooks notify them: Gitaly's config.toml (listeners, TLS paths, token,
    storages, internal API URL) HUPs gitaly, and so does its secret file (from GITALY_SECRET)
    or the shell secret (from GITALY_RESTARTS_ON_SHELL_SECRET; both in lab/omnibus/release.py);
    gitlab.yml, secrets.yml and gitlab_shell_secret restart the web server (Puma or Unicorn,
    with Sidekiq and Workhorse, all folded into one here).
    """
    if old is None:
        return enabled(new)
    out: list[str] = []
    was, now = old.get("gitaly") or {}, new.get("gitaly") or {}
    if version < GITALY_RESTARTS_ON_SHELL_SECRET:
        was = {k: v for k, v in was.items() if k != "hook_secret"}
        now = {k: v for k, v in now.items() if k != "hook_secret"}
    if was != now:
        out.append("gitaly")
    if (old.get("app") or {}) != (new.get("app") or {}):
        out.append(web_service())
    for name in ("praefect", "postgresql"):
        if (old.get(name) or {}) != (new.get(name) or {}):
            out.append(name)
    return [s for s in out if s in enabled(new)]


class Adopted:
    """A service process the fork server made (labsim.node.spare): PID 1's child once its
    middle process exited, with the part of Popen's interface the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # set here, or by Supervisor.reap

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped already (reap() recorded its code), or, where this process could
                # not be made the orphans' parent, another's child: gone is all we learn.
                if self.returncode is None and not _alive(self.pid):
                    self.returncode = 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.time() + timeout
        while self.poll() is None:
            if deadline is not None and time.time() >= deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            time.sleep(0.01)
        return self.returncode if self.returncode is not None else 0

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as someone else's
        pass
    return True


Process = subprocess.Popen[bytes] | Adopted


class Spare:
    """A service's fork server and the pipe it tells each new process's PID on."""

    def __init__(self, module: str) -> None:
        told, tell = os.pipe()
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "labsim.node.spare", module,
                                      str(tell)], stdin=subprocess.PIPE, pass_fds=(tell,))
        os.close(tell)
        self.told = told

    def fork(self) -> Adopted | None:
        """A new process of the service; None when the server is gone or does not answer."""
        if self.proc.poll() is not None or self.proc.stdin is None:
            return None
        try:
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()
        except OSError:  # it ended meanwhile
            return None
        ready, _, _ = select.select([self.told], [], [], SPARE_ANSWER_SECONDS)
        line = os.read(self.told, 64) if ready else b""
        try:
            pid = int(line.strip())
        except ValueError:
            return None
        return Adopted(pid) if pid > 0 else None  # 0: its fork failed

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # end of input: the server ends
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        with contextlib.suppress(OSError):
            os.close(self.told)


def adopt_orphans() -> None:
    """Be the parent of the processes the fork servers make once their middle process
    exits: PID 1 is; anywhere else (the host's unit tests) ask Linux to make us so."""
    if os.getpid() == 1 or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


class Supervisor:
    def __init__(self) -> None:
        adopt_orphans()
        self.children: dict[str, Process] = {}
        self.started: dict[str, float] = {}
        # Service name -> its fork server (labsim.node.spare): imported once, forked on
        # each restart after the first.
        self.spares: dict[str, Spare] = {}
        # Service name -> when to start its spare.
        self.spare_due: dict[str, float] = {}
        self.want_restart = False
        self.want_stop = False
        # Written to by the signal handlers, so the loop acts on a signal at once, not at
        # its tick (a pipe, so that one select also watches the gitlab-ctl listener).
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        # Where `gitlab-ctl reconfigure` hands its run to a fork of this process.
        self.ctl_listener: socket.socket | None = None
        # The services changed since PID 1 last logged them up: each tick asks whether
        # they are up now (``mark_up``); ``marked``: its last such line says they are.
        self.up_pending = False
        self.marked = False

    def ask(self, what: str) -> None:
        setattr(self, what, True)
        self.wake()

    def wake(self) -> None:
        """Have the loop look now (a signal handler's call: a write to a pipe)."""
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")

    def watch_children(self) -> None:
        """A child's exit (a service, a fork server, an adopted orphan) wakes the loop, which
        reaps it and starts a service again; PID 1's own program calls this, not tests."""
        signal.signal(signal.SIGCHLD, lambda *_: self.wake())

    def next_tick(self) -> float:
        """Seconds until the loop has something due without being woken."""
        now = time.time()
        due = [now + (UP_TICK if self.up_pending else IDLE_TICK), *self.spare_due.values()]
        due += [self.started[name] + RESTART_AFTER for name, proc in self.children.items()
                if proc.poll() is not None]
        return max(0.0, min(due) - now)

    def restart_due(self, name: str) -> bool:
        return time.time() - self.started[name] >= RESTART_AFTER

    def wait(self, timeout: float) -> None:
        """Until a signal or ``timeout``; serves gitlab-ctl requests meanwhile."""
        watched: list[Any] = [self._wake_r]
        if self.ctl_listener is not None:
            watched.append(self.ctl_listener)
        ready, _, _ = select.select(watched, [], [], timeout)
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 4096)
        if self.ctl_listener is not None and self.ctl_listener in ready:
            handover_server.serve_one(self.ctl_listener, run_ctl)

    def listen_ctl(self) -> None:
        """From now on gitlab-ctl's reconfigure runs in a fork of this process."""
        try:
            self.ctl_listener = handover_server.listen(runstate.CTL_SOCKET)
        except OSError as exc:  # gitlab-ctl then runs in its own process, as before
            log(f"gitlab-ctl listener: {exc}")

    def write_state(self) -> None:
        self.unmark()
        state = {name: {"pid": proc.pid, "started": self.started[name]}
                 for name, proc in self.children.items() if proc.poll() is None}
        with open(STATE + ".tmp", "w") as fh:
            json.dump(state, fh)
        os.replace(STATE + ".tmp", STATE)
        self.up_pending = True

    def unmark(self) -> None:
        """The services are changing: the last up line no longer holds. Said once."""
        if self.marked:
            self.marked = False
            log(sim_node.CHANGING)

    def mark_up(self) -> None:
        """Once every service runs and accepts connections, by `gitlab-ctl status`'s own
        test, say so in the log (``sim_node.up_line``), where readiness reads it."""
        if not self.up_pending:
            return
        try:
            # By name, as run_ctl: gitlab-ctl's reconfigure imports this module.
            if importlib.import_module(CTL_PROGRAM).status(None, quiet=True) != 0:
                return
            log(sim_node.up_line(name for name, proc in self.children.items()
                                 if proc.poll() is None))
            self.marked = True
        except Exception as exc:  # PID 1 outlives its readiness aid: status is asked anyway
            # Said once: the next change of services tries again.
            log(f"up line: {type(exc).__name__}: {exc}")
        self.up_pending = False

    def start(self, name: str) -> None:
        spare = self.spares.get(name)
        forked = spare.fork() if spare is not None else None
        if forked is not None:
            self.children[name] = forked
        else:
            if spare is not None:  # gone or mute: a new one is made after this start
                self.spares.pop(name).close()
            argv = SSHD if name == "sshd" else [sys.executable, "-P", "-m", program_of(name)]
            self.children[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        self.started[name] = time.time()
        log(f"started {name} (pid {self.children[name].pid})")

    def make_spares(self) -> None:
        """Start the fork servers that are due, for services that still run."""
        now = time.time()
        for name, due in list(self.spare_due.items()):
            if due > now:
                continue
            del self.spare_due[name]
            if name in self.children and name not in self.spares:
                self.spares[name] = Spare(program_of(name))

    def drop_spares(self, keep: Collection[str] = ()) -> None:
        for name in [n for n in self.spares if n not in keep]:
            self.spares.pop(name).close()

    def stop(self, names: list[str]) -> None:
        for name in names:
            proc = self.children.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.time() + 5
        for name in names:
            proc = self.children.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        # sshd is not a GitLab service: gitlab-ctl restart leaves it running.
        self.stop([name for name in self.children if name != "sshd"])
        self.drop_spares()

    def stop_sshd(self) -> None:
        proc = self.children.pop("sshd", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait()

    def start_all(self) -> None:
        for name in enabled(simconfig.read_runtime()):
            self.start(name)
        self.write_state()

    def restart_services(self) -> None:
        """Bring the services in line with the runtime config: stop the ones no longer
        enabled, start the missing ones, and restart those reconfigure named (all of
        them when it named none: `gitlab-ctl restart`)."""
        self.unmark()
        only: list[str] | None = None
        try:
            with open(RESTART_ONLY) as fh:
                only = list(json.load(fh))
            os.unlink(RESTART_ONLY)
        except (OSError, ValueError):
            only = None
        wanted = enabled(simconfig.read_runtime())
        running = [n for n in self.children if n != "sshd"]
        self.stop([n for n in running if n not in wanted or only is None or n in only])
        self.drop_spares(keep=wanted)
        for name in wanted:
            if name not in self.children:
                self.start(name)
                self.spare_due[name] = time.time() + SPARE_AFTER
        self.write_state()

    def run_services(self) -> int:
        signal.signal(signal.SIGUSR1, lambda *_: self.ask("want_restart"))
        self.start_all()
        # omnibus-ctl's last word once the Chef run (which enables the services) succeeded.
        print(RECONFIGURED, flush=True)
        self.listen_ctl()
        while not self.want_stop:
            # A restart asked for by gitlab-ctl (SIGUSR1) wakes the loop at once.
            self.wait(self.next_tick())
            self.reap()
            if self.want_restart:
                self.want_restart = False
                log("restarting services")
                self.restart_services()
            self.make_spares()
            for name, proc in list(self.children.items()):
                if proc.poll() is None:
                    continue
                self.unmark()
                # runit-style: a service that dies is started again.
                if self.restart_due(name):
                    log(f"{name} exited with {proc.returncode}; starting it again")
                    self.start(name)
                    self.write_state()
            self.mark_up()
        log("stopping")
        self.unmark()
        self.stop_all()
        self.stop_sshd()
        return 0

    def reap(self) -> None:
        # As PID 1 we also adopt orphans (e.g. git processes); collect them.
        try:
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                for proc in (*self.children.values(),
                             *(spare.proc for spare in self.spares.values())):
                    if proc.pid == pid:
                        proc.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass


def release() -> Version:
    """The GitLab release this node plays: the lab's compose file says (simconfig's
    VERSION_ENV); a container started by hand reads /RELEASE, as the real image has it."""
    if os.environ.get(VERSION_ENV, "").strip():
        return simconfig.node_version()
    try:
        with open(RELEASE) as fh:
            for line in fh:
                key, _, value = line.strip().partition("=")
                if key == "RELEASE_VERSION":
                    return Version.parse(value.split("-")[0])
    except (OSError, ValueError):
        pass
    return simconfig.node_version()


#: Sets of host keys made when the image was built (images/sim/Dockerfile), one folder each.
SSH_KEY_POOL = "/opt/gitlab/embedded/sim-ssh-host-keys"
SSH_KEY_KINDS = {"rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                 "ecdsa": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                 "ed25519": ["-algorithm", "ED25519"]}


def ssh_host_keys(etc: str = ETC, pool: str = SSH_KEY_POOL) -> None:
    """The host keys the wrapper makes in /etc/gitlab on first start (root, private 0600).

    The sim's sshd serves nothing, so what matters is that the files appear as the
    wrapper's would. Each comes from a set made at image build, one set picked at
    random: an RSA key made here cost 0.2-0.35 s of CPU per node, at the first start of
    every node while the lab's other nodes boot on the same cores. Without the sets,
    openssl makes them (PEM, not OpenSSH: the sim has no ssh-keygen)."""
    sets = sorted(os.listdir(pool)) if os.path.isdir(pool) else []
    chosen = os.path.join(pool, _random.choice(sets)) if sets else None
    for kind, opts in SSH_KEY_KINDS.items():
        key = os.path.join(etc, f"ssh_host_{kind}_key")
        if os.path.isfile(key):
            continue
        print(f"Generating ssh_host_{kind}_key...", flush=True)
        made = os.path.join(chosen, os.path.basename(key)) if chosen else ""
        if made and os.path.isfile(made) and os.path.isfile(made + ".pub"):
            with open(made, "rb") as src:
                private = src.read()
            with open(made + ".pub", "rb") as src:
                pub = src.read()
        else:
            private = subprocess.run(["openssl", "genpkey", *opts], check=True,
                                     capture_output=True).stdout
            pub = subprocess.run(["openssl", "pkey", "-pubout"], input=private, check=True,
                                 capture_output=True).stdout
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private)
        os.chmod(key, 0o600)
        with open(key + ".pub", "wb") as fh:
            fh.write(pub)


def manage_etc(raw: dict[str, Any]) -> bool:
    # Older releases spelt the attribute manage-storage-directories (docs/fidelity.md);
    # gitlab.rb uses manage_storage_directories['manage_etc'] in every release the lab supports.
    for key in ("manage_storage_directories", "manage-storage-directories"):
        section = raw.get(key)
        if isinstance(section, dict) and section.get("manage_etc") is False:
            return False
    return True


def rewrite_secrets(data: dict[str, Any], version: Version,
                    path: str = simconfig.SECRETS_JSON) -> dict[str, Any]:
    """Fill what is missing and write the whole file back, as every reconfigure does.

    What it writes for ``version``: lab.omnibus.gitlab_secrets (key pairs are random
    stand-ins). Values already there win; the file is truncated in place (owner kept) and
    made 0600."""
    out = gitlab_secrets.fill(data, version)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(out, fh, indent=2)
        fh.write("\n")
    os.chmod(path, 0o600)
    return out


def initial_root_password(node: dict[str, Any], version: Version) -> None:
    """On the first bootstrap of a node with Rails, root's password lands in a file (from
    INITIAL_ROOT_PASSWORD in lab/omnibus/release.py)."""
    if not node.get("app") or not dialect.dialect_for(version).initial_root_password \
            or os.path.exists(BOOTSTRAPPED):
        return
    path = os.path.join(ETC, "initial_root_password")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# WARNING: written by the gitlab-testlab sim; no real account uses it.\n"
                 f"Password: {base64.b64encode(_random.token_bytes(32)).decode()}\n")
    with open(BOOTSTRAPPED, "w"):
        pass


def reconfigure() -> dict[str, Any]:
    """Evaluate gitlab.rb + secrets, do what Chef does to /etc/gitlab, publish the runtime
    config (ConfigError on failure)."""
    for folder in (simconfig.STATE_DIR, simconfig.LOG_DIR):
        os.makedirs(folder, exist_ok=True)
    raw = simconfig.evaluate()
    version = release()
    simconfig.check_release(raw, version)  # as simconfig.load: unknown keys abort
    if manage_etc(raw):
        os.chown(ETC, 0, 0)
        os.chmod(ETC, 0o775)
    # Omnibus' storage_directory resources: the folders of the release's rule
    # (lab/omnibus/directories.py), mkdir -p, owner git; Gitaly makes none itself.
    for folder in directories.created_storage_dirs(raw, version):
        os.makedirs(folder, exist_ok=True)
    secrets = rewrite_secrets(simconfig.load_secrets(), version)
    node = simconfig.effective(raw, secrets, version)
    initial_root_password(node, version)
    if node.get("praefect"):
        praefect_pure.write_config(node["praefect"])
    node[runstate.WEB_SERVICE] = web_service()
    simconfig.write_runtime(node)
    return node


def from_source() -> bool:
    """This node plays an installation from source (the compose file says so)."""
    return os.environ.get(INSTALL_ENV, "").strip() == "source"


INSTALLED = os.path.join(simconfig.STATE_DIR, "installed-from-source")


def install_storages(node: dict[str, Any]) -> None:
    """The installation step that makes the storage folders (the admin's mkdir in the
    source install guide), once: on the node's first boot only. Afterwards Gitaly's own
    rule holds: a storage path added later must exist or Gitaly refuses to start."""
    if os.path.exists(INSTALLED):
        return
    for path in (node.get("gitaly") or {}).get("storages", {}).values():
        if path:
            os.makedirs(path, exist_ok=True)
    with open(INSTALLED, "w"):
        pass


def source_role() -> str:
    """What this source node runs: the app when its Rails root has a gitlab.yml, Gitaly
    otherwise (the files the compose file mounts at /home/git say which was installed)."""
    return "app" if os.path.isfile(GITLAB_YML) else "gitaly"


def load_source(version: Version) -> dict[str, Any]:
    """The node's runtime config from its own files (SourceConfigError when unreadable)."""
    if source_role() == "app":
        return sourceconfig.load_app(version)
    return sourceconfig.load(version)


def restart_source(sup: Supervisor) -> None:
    """`service gitlab restart` on a source node (labsim.node.service signals it): its
    services stop and start again from their files. Files they cannot read leave them
    stopped, as a service started on them exits at once, with the reason in the node's
    log and in runstate.RESTART_FAILED for the script that asked."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(runstate.RESTART_FAILED)
    try:
        simconfig.write_runtime(load_source(release()))
    except sourceconfig.SourceConfigError as exc:
        log(str(exc))
        sup.stop_all()
        with open(runstate.RESTART_FAILED, "w") as fh:
            fh.write(f"{exc}\n")
        sup.write_state()
        return
    sup.restart_services()


def main_source(sup: Supervisor) -> int:
    """A node installed from source: no gitlab.rb, no reconfigure, no ssh keys.

    Gitaly starts from config.toml and the secret file it names, the app (web server and
    internal API) from gitlab.yml and its .gitlab_shell_secret (labsim.common.sourceconfig);
    a change takes effect by restarting the container, or its services (SIGUSR1, from
    `service gitlab restart`: labsim.node.service), which reads them again.
    """
    os.makedirs(simconfig.RUN_DIR, mode=0o700, exist_ok=True)
    for folder in (simconfig.STATE_DIR, simconfig.LOG_DIR):
        os.makedirs(folder, exist_ok=True)
    with open(STOPPED, "w") as fh:
        json.dump([], fh)
    role = source_role()
    try:
        node = load_source(release())
    except sourceconfig.SourceConfigError as exc:
        log(str(exc))
        return 1
    install_storages(node)
    simconfig.write_runtime(node)
    log(f"gitlab-testlab-sim node up; installed from source; roles: {role}")
    signal.signal(signal.SIGUSR1, lambda *_: sup.ask("want_restart"))
    sup.start_all()
    while not sup.want_stop:
        sup.wait(sup.next_tick())
        sup.reap()
        if sup.want_restart:
            sup.want_restart = False
            what = "gitlab.yml" if role == "app" else "config.toml"
            log(f"restarting {role} ({what} read again)")
            restart_source(sup)
        sup.make_spares()
        for name, proc in list(sup.children.items()):
            if proc.poll() is not None and sup.restart_due(name):
                log(f"{name} exited with {proc.returncode}; starting it again")
                sup.start(name)
                sup.write_state()
    sup.stop_all()
    return 0


def main() -> int:
    sup = Supervisor()
    signal.signal(signal.SIGTERM, lambda *_: sup.ask("want_stop"))
    signal.signal(signal.SIGINT, lambda *_: sup.ask("want_stop"))
    sup.watch_children()
    if from_source():
        return main_source(sup)
    ssh_host_keys()
    # "Remove all services, the reconfigure will create them" (the wrapper's rm -f
    # /opt/gitlab/service/*): nothing from the last run counts until reconfigure did.
    for stale in (STATE, runstate.RUNTIME):
        if os.path.exists(stale):
            os.unlink(stale)
    os.makedirs(simconfig.RUN_DIR, mode=0o700, exist_ok=True)
    with open(STOPPED, "w") as fh:
        json.dump([], fh)
    print("Preparing services...\nStarting services...", flush=True)
    sup.start("sshd")
    sup.write_state()
    print("Configuring GitLab...", flush=True)
    # A sim knob: how long reconfigure takes, to show the window before it is done.
    time.sleep(float(os.environ.get("GITLAB_SIM_RECONFIGURE_SECONDS", "0") or 0))
    try:
        node = reconfigure()
    except simconfig.ConfigError as exc:
        message = ("gitlab Reconfigure failed (gitlab-testlab-sim):\n" + str(exc))
        print(message, flush=True)
        print(message, file=sys.stderr, flush=True)
        sup.stop_sshd()
        return 1  # the wrapper's `set -e`: the container ends
    roles = [s for s in ("gitaly", "app", "praefect", "postgresql") if node.get(s)]
    log(f"gitlab-testlab-sim node up; roles: {', '.join(roles) or 'none'}")
    code = sup.run_services()
    return code


if __name__ == "__main__":
    sys.exit(main())
