"""Gathering `lab doctor`'s facts: what Docker says, what is inside each container,
what each Gitaly server and the internal API answer, which certificates are mounted.

A secret read from a container never leaves this module except as a fingerprint
or a short-lived JWT signed with it (and, for collect's redaction, in
``Gathered.secrets``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from lab.engine import docker as dk
from lab.engine.compose import detect
from lab.engine.host import containers_routable, mem_available, port_in_use
from lab.engine.images import image_for, sim_image_ref
from lab.engine.run import Result
from lab.errors import LabError, SpecError
from lab.lifecycle import probes
from lab.lifecycle.contract import LabHandle
from lab.lifecycle.lab_image import sim_posing
from lab.model.needs import disk_needed, memory_needed
from lab.model.topology import Engine, Lab, Node
from lab.omnibus import dialect as omnibus_dialect
from lab.omnibus import eras
from lab.omnibus import praefect as pf
from lab.omnibus.auth import encode_shell_jwt
from lab.omnibus.node import gitaly_check_cmd
from lab.omnibus.release import DEFAULT_VERSION, Version
from lab.omnibus.source_layout import APP_SHELL_SECRET_FILE, SHELL_SECRET_FILE
from lab.render.diagram import grpc_links
from lab.render.gitlab_rb import internal_api_url, token_of
from lab.render.secrets import fingerprint
from lab.store.lab_folder import LabFolder
from lab.store.labdir import node_paths
from lab.store.layout import read_no_links
from lab.support.doctor.facts import (
    INTERNAL_CHECK,
    SECRETS_PATH,
    ApiProbe,
    BackendFacts,
    ClusterFacts,
    Gathered,
    GitalyProbe,
    HostFacts,
    NodeFacts,
    TlsFacts,
)
from lab.support.doctor.wiring import read_source_toml, read_source_yml

# A certificate is a few KB; a CA bundle some hundred.
CERT_MAX_BYTES = 1 << 20


def docker_facts() -> tuple[str | None, str, str]:
    """(engine version, error, data root)."""
    try:
        version = dk.version()
        root = str(dk.info().get("DockerRootDir", ""))
    except LabError as exc:
        return None, str(exc).splitlines()[0], ""
    return version, "", root


def gather_host(lab: Lab | None, *, image: str | None = None,
                lab_running: bool = False) -> HostFacts:
    version, error, root = docker_facts()
    try:
        tool = detect()
        compose, compose_error = f"{tool.name} {tool.version}", ""
    except LabError as exc:
        compose, compose_error = None, str(exc)
    disk_path = root if root and Path(root).exists() else str(Path.home())
    try:
        disk_free: int | None = shutil.disk_usage(disk_path).free
    except OSError:
        disk_free = None
    images: list[tuple[str, bool]] = []
    posing = ""
    mem_needed = disk_needed_ = 0
    busy: list[tuple[str, int]] = []
    checked = 0
    if version is not None:
        ref = (image or image_for(lab)) if lab is not None else sim_image_ref()
        images.append((ref, dk.image_present(ref)))
        if lab is not None and images[-1][1]:
            posing = sim_posing(lab, ref)
    if lab is not None:
        mem_needed = memory_needed(lab)
        disk_needed_ = disk_needed(lab, all(p for _, p in images))
        if not lab_running:
            for node in lab.nodes:
                for pname, port in node.publish:
                    if port:
                        checked += 1
                        if port_in_use(port):
                            busy.append((f"{node.name} {pname}", port))
    return HostFacts(
        docker_version=version, docker_error=error, compose=compose,
        compose_error=compose_error, mem_available=mem_available(), disk_free=disk_free,
        disk_path=disk_path, mem_needed=mem_needed, disk_needed=disk_needed_,
        lab_running=lab_running, ports_busy=tuple(busy), ports_checked=checked,
        images=tuple(images), flavor=lab.flavor.value if lab else "", image_warning=posing,
        swarm_stack=lab.project_name if lab is not None and lab.engine is Engine.SWARM else "",
    )


def read_config(root: Path, rel: str, omnibus_config: str, version: Version | None = None
                ) -> tuple[str | None, tuple[tuple[bool, str], ...], tuple[tuple[int, str], ...]]:
    """(error, findings against ``version``, Ruby statements not read) for the gitlab.rb at
    ``rel`` in the lab folder ``root``.

    The file is parsed statically (lab.spec.rb_reader), never run on this host, and read
    without following a link (``LabFolder.gitlab_rb``).
    """
    try:
        read = LabFolder(root).gitlab_rb(rel, omnibus_config)
    except SpecError as exc:
        return str(exc), (), ()
    findings = omnibus_dialect.findings(read.settings, version) if version is not None else []
    return None, tuple(findings), read.skipped


def _read_secrets(handle: LabHandle, node: str) -> tuple[dict[str, Any] | None, str]:
    """The node's own gitlab-secrets.json, read inside the container (None: missing)."""
    res = handle.exec(node, ["cat", SECRETS_PATH], check=False, timeout=30)
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        return None, lines[-1] if lines else ""
    try:
        data = json.loads(res.stdout)
    except ValueError:
        return {}, "not valid JSON"
    return (data if isinstance(data, dict) else {}), ""


def _read_source_secret(handle: LabHandle, node: Node) -> tuple[dict[str, Any] | None, str]:
    """A source node's secret file, read inside the container, in the shape of a
    gitlab-secrets.json so that the same checks compare it (None: missing): a Gitaly
    node's is the one its config.toml names (before 13.0 gitlab-shell's default beside
    it), an app node's the one gitlab.yml's gitlab_shell.secret_file names (Rails'
    default: Rails.root/.gitlab_shell_secret)."""
    if node.is_app:
        path = APP_SHELL_SECRET_FILE
        with contextlib.suppress(SpecError):  # the file checks say what is wrong with it
            path = read_source_yml(handle.path, node).secret_file or path
    else:
        path = SHELL_SECRET_FILE
        with contextlib.suppress(SpecError):
            path = read_source_toml(handle.path, node).secret_file or path
    res = handle.exec(node.name, ["cat", path], check=False, timeout=30)
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        return None, lines[-1] if lines else ""
    return {"gitlab_shell": {"secret_token": res.stdout.strip()}}, ""


def hook_secret(data: Mapping[str, Any], version: Version | None = None) -> str:
    """What a Gitaly node signs internal API calls with, in its release's rule
    (lab.omnibus.dialect.signing_secret: the shell secret before
    lab.omnibus.release.GITALY_SECRET, then gitaly.gitlab_secret falling back to it)."""
    d = omnibus_dialect.dialect_for(version or Version.parse(DEFAULT_VERSION))
    return omnibus_dialect.signing_secret(d, data, omnibus_dialect.getter({}))


def _shell(data: Mapping[str, Any]) -> str:
    shell = data.get("gitlab_shell")
    return str(shell.get("secret_token", "") if isinstance(shell, dict) else "").strip()


def _fp(value: str) -> str | None:
    return fingerprint(value) if value else None


def node_states(status: Any) -> dict[str, str]:
    """node -> container state, from a ``LabStatus``."""
    return {str(n.node): str(n.state) for n in status.nodes}


def gather_lab(handle: LabHandle, states: Mapping[str, str]) -> Gathered:
    lab = handle.lab
    running = any(s == "running" for s in states.values())
    host = gather_host(lab, image=handle.rendered.image, lab_running=running)
    g = Gathered(host=host)
    have_ruby = shutil.which("ruby") is not None
    for node in lab.nodes:
        state = states.get(node.name, "missing")
        rb = handle.path / node_paths(node).gitlab_rb
        err: str | None = None
        findings: tuple[tuple[bool, str], ...] = ()
        code: tuple[tuple[int, str], ...] = ()
        skipped = ""
        if node.from_source:
            what = "gitlab.yml" if node.is_app else "config.toml"
            skipped = f"installed from source: its {what} is checked below (files)"
        elif not have_ruby:
            skipped = "ruby is not installed on this host (apt-get install ruby)"
        elif not rb.is_file():
            err = f"{rb} is missing"
        else:
            err, findings, code = read_config(handle.path, node_paths(node).gitlab_rb,
                                              node.omnibus_config, lab.version)
        facts = NodeFacts(node.name, state, config_error=err, config_skipped=skipped,
                          findings=findings, code=code)
        if state == "running":
            data, why = (_read_source_secret(handle, node) if node.from_source
                         else _read_secrets(handle, node.name))
            if data is not None:
                g.secrets[node.name] = data
            facts = replace(facts, secrets_present=data is not None,
                            shell_sha=_fp(_shell(data or {})),
                            hook_sha=_fp(hook_secret(data or {}, lab.version)),
                            secrets_error=why)
        g.nodes.append(facts)
    if states.get(lab.app.name) == "running":
        g.gitaly = probe_gitaly(handle)
    g.tls = tls_facts(handle.path, lab)
    for node in lab.external_gitaly_nodes:
        if states.get(node.name) == "running":
            g.api.append(probe_internal_api(handle, node, g.secrets.get(node.name, {})))
    if have_ruby:
        g.cluster = [cluster_facts(handle, p, states) for p in lab.praefect_nodes]
    return g


def _host(address: str) -> str:
    return address.split("://", 1)[-1].rsplit(":", 1)[0]


def _settings(handle: LabHandle, node: Node) -> dict[str, Any]:
    return LabFolder(handle.path).gitlab_rb(node_paths(node).gitlab_rb,
                                            node.omnibus_config).settings


def cluster_facts(handle: LabHandle, node: Node, states: Mapping[str, str]) -> ClusterFacts:
    """The three sides of one Praefect, as their gitlab.rb files say, and its sql-ping."""
    lab = handle.lab
    d = omnibus_dialect.dialect_for(lab.version)
    try:
        mine = pf.read_praefect(omnibus_dialect.getter(_settings(handle, node)), lab.version)
        app = omnibus_dialect.read_app(omnibus_dialect.getter(_settings(handle, lab.app)), d)
        by_host = {n.name: omnibus_dialect.read_gitaly(
            omnibus_dialect.getter(_settings(handle, n)), d) for n in lab.gitaly_nodes
            if n.gitaly_only}
    except (SpecError, OSError) as exc:
        return ClusterFacts(node.name, node.gitaly_address, None, (), None, (),
                            read_error=str(exc))
    listens = mine.tls_listen_addr or mine.listen_addr
    port = listens.rsplit(":", 1)[-1]
    dialled = [s for s, row in app.storages.items()
               if _host(row["address"]) == node.name and row["address"].endswith(f":{port}")]
    app_token = next((app.storages[s].get("token") for s in dialled
                      if app.storages[s].get("token") is not None), app.token)
    backends = []
    for vs in mine.virtual_storages.values():
        for b in vs:
            host = _host(b.address)
            gitaly = by_host.get(host)
            backends.append(BackendFacts(
                b.storage, b.address, _fp(b.token), host if gitaly is not None else None,
                _fp(gitaly.token or "") if gitaly is not None else None,
                tuple(gitaly.storages) if gitaly is not None else ()))
    ping: str | None = None
    ok = False
    if states.get(node.name) == "running":
        res = handle.exec(node.name, pf.praefect_cmd("sql-ping"), check=False, timeout=60)
        ping = (res.stdout + res.stderr).strip()
        ok = res.returncode == 0
    db = f"{mine.database.get('host', '')}:{mine.database.get('port', '')}"
    return ClusterFacts(node.name, listens, _fp(mine.token or ""), tuple(dialled),
                        _fp(app_token or ""), tuple(mine.virtual_storages), tuple(backends),
                        db, ping, ok)


def probe_gitaly(handle: LabHandle) -> list[GitalyProbe]:
    """Each external Gitaly node, called the way the app calls it: its address, its token."""
    lab, sec = handle.lab, handle.rendered.secrets
    app = lab.app
    token = token_of(lab, sec, app)
    # A swarm lab's network is an overlay: its addresses are not routable from the host
    # even on a local engine (ServerInfo from here failed every node), so the app asks.
    local = lab.engine is not Engine.SWARM and containers_routable()
    rake: Result | None = None
    out = []
    # Gitaly Cluster: the app dials Praefect; Praefect dials its Gitaly nodes with its
    # internal token, which the host can ask as Praefect would.
    for client, node in grpc_links(lab):
        storages = tuple(s.name for s in node.storages)
        if local:
            out.append(_server_info_probe(
                handle, node, sec.praefect_token if client.is_praefect else token, storages,
                client))
            continue
        if client.is_praefect:
            continue  # only the app's view can be asked without a route to the lab network
        if rake is None:
            # The rake task checks every storage at once, and may take minutes: run it once.
            rake = handle.exec(app.name, gitaly_check_cmd(source=app.from_source),
                               check=False, timeout=300)
        out.append(_rake_probe(rake, node, storages, source=app.from_source))
    return out


def _server_info_probe(handle: LabHandle, node: Node, token: str,
                       storages: tuple[str, ...], client: Node | None = None) -> GitalyProbe:
    # Imported late: the gRPC stack is only needed once a lab is up.
    from lab.client.gitaly import GitalyError, node_server_info, unreadable_storages

    try:
        ip = handle.container(node.name).ip
    except LabError:  # its container was removed (`docker rm`): a FAIL row, not the end
        ip = None
    if ip is None:
        return GitalyProbe(node.name, node.gitaly_address, storages, "no address on the lab "
                           "network (is the node up?)")
    client = client or handle.lab.app
    via = f"ServerInfo as {client.name}" if client.is_praefect else "ServerInfo"
    ca = handle.rendered.secrets.tls.get("ca.crt", "") if client.trust_ca else ""
    try:
        # The client dials the node name: the certificate must carry it.
        info = node_server_info(ip, node, token, ca_pem=ca, server_name=node.name)
    except GitalyError as exc:
        return GitalyProbe(node.name, node.gitaly_address, storages, str(exc), via=via)
    return GitalyProbe(node.name, node.gitaly_address, storages,
                       unreadable=unreadable_storages(info, storages), via=via)


def _rake_probe(res: Result, node: Node, storages: tuple[str, ...], *,
                source: bool = False) -> GitalyProbe:
    # The task exits 0 even when it prints FAIL: its verdict is per storage.
    st = probes.gitaly_check_status(res, storages)
    error = "" if st.ok else st.detail
    return GitalyProbe(node.name, node.gitaly_address, storages, error,
                       via=("bundle exec rake gitlab:gitaly:check" if source
                            else "gitlab-rake gitlab:gitaly:check"))


def _read(lab_dir: Path, rel: str) -> str | None:
    # Never through a link, anywhere on the path: a container may link its /etc/gitlab
    # files or folders to any host file.
    try:
        return read_no_links(lab_dir, rel, limit=CERT_MAX_BYTES)
    except (OSError, ValueError):
        return None


def _cas(lab_dir: Path, rel: str) -> tuple[str, ...]:
    folder = lab_dir / rel
    if not folder.is_dir() or folder.is_symlink():
        return ()
    return tuple(t for p in sorted(folder.iterdir())
                 if (t := _read(lab_dir, f"{rel}/{p.name}")))


def tls_facts(lab_dir: Path, lab: Lab) -> list[TlsFacts]:
    """The mounted certificate files: what each TLS Gitaly node serves and who trusts what."""
    out = []
    app_dir = f"nodes/{lab.app.name}"
    for node in lab.external_gitaly_nodes:
        if not node.tls:
            continue
        ndir = f"nodes/{node.name}"
        out.append(TlsFacts(node.name, node.name, _read(lab_dir, f"{ndir}/ssl/{node.name}.crt"),
                            _cas(lab_dir, f"{app_dir}/trusted-certs"),
                            _cas(lab_dir, f"{ndir}/trusted-certs")))
    return out


def curl_check_cmd(url: str, headers: Mapping[str, str]) -> list[str]:
    """GET the internal check endpoint; prints only the HTTP status."""
    args = [a for name, value in headers.items() for a in ("-H", f"{name}: {value}")]
    return ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            *args, url.rstrip("/") + INTERNAL_CHECK]


def probe_internal_api(handle: LabHandle, node: Node, secrets: Mapping[str, Any]) -> ApiProbe:
    """From inside the Gitaly node, signed with that node's own secret the way the lab's
    release signs (lab.omnibus.eras.internal_api_headers: the headers Gitaly of that release
    sends, by the boundaries in lab.omnibus.release)."""
    url = internal_api_url(handle.lab, node)
    if url is None:
        return ApiProbe(node.name, None)
    secret = hook_secret(secrets, handle.lab.version)
    if not secret:
        return ApiProbe(node.name, url, error=f"{node.name} has no shell secret to sign with")
    headers = eras.internal_api_headers(handle.lab.version, secret,
                                        encode_shell_jwt)
    res = handle.exec(node.name, curl_check_cmd(url, headers), check=False, timeout=30)
    code = res.stdout.strip()[-3:]
    status = int(code) if code.isdigit() else None
    return ApiProbe(node.name, url, status, (res.stderr.strip().splitlines() or [""])[-1])
