"""The lab as a Mermaid flowchart, for pasting into a GitLab issue (GitLab renders Mermaid).

Pure. It draws each node with its roles and storages, the address the app dials
for each Gitaly node (scheme and port), the internal API URL each Gitaly node
calls back, and whether the two ends of each link hold the same secret, by hash
only: a disagreement is a red edge naming the setting, never showing a value. A TLS
link that cannot work (a CA not trusted, a certificate not naming the host dialled)
is a red edge too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from lab.model.topology import Lab, Node
from lab.render.gitlab_rb import internal_api_url, node_token
from lab.render.secrets import LabSecrets, fingerprint, shell_secret

SHELL_SECRET = "gitlab_shell.secret_token"
# The app's gitlab_rails['gitaly_token'] against the Gitaly node's auth token.
GITALY_TOKEN = "gitaly auth token"
AGREE_STYLE = "stroke:#2da44e"
MISMATCH_STYLE = "stroke:#d1242f,stroke-width:3px,color:#d1242f"


@dataclass(frozen=True)
class Hashes:
    """Per node, the fingerprint of each secret it uses (None: it has none)."""

    shell_secret: Mapping[str, str | None]
    gitaly_token: Mapping[str, str | None]


def rendered_hashes(lab: Lab, sec: LabSecrets) -> Hashes:
    """What the lab directory gives each node."""
    shell: dict[str, str | None] = {}
    for node in lab.nodes:
        data = sec.for_node(node)
        shell[node.name] = fingerprint(shell_secret(data)) if data else None
    tokens = {n.name: fingerprint(node_token(sec.gitaly_token, n)) for n in lab.nodes}
    return Hashes(shell, tokens)


def node_id(name: str) -> str:
    # A prefix keeps Mermaid keywords (`end`, `graph`) and dashes out of ids.
    return "n_" + re.sub(r"\W", "_", name)


def text(value: str) -> str:
    """A label Mermaid shows as written: quotes and angle brackets as entities."""
    return (value.replace("&", "#amp;").replace('"', "#quot;")
            .replace("<", "#lt;").replace(">", "#gt;"))


def _node_line(node: Node) -> str:
    lines = [f"<b>{text(node.name)}</b>", text(" + ".join(r.value for r in node.roles))]
    lines += [text(f"storage {s.name}: {s.repositories_path}") for s in node.storages]
    if node.is_gitaly and not node.is_app:
        lines.append(text(f"listens {node.gitaly_address}"))
    return f'    {node_id(node.name)}["{"<br/>".join(lines)}"]'


class _Edges:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.styles: list[str] = []

    def add(self, a: str, arrow: str, b: str, label: str, style: str = "") -> None:
        if style:
            self.styles.append(f"    linkStyle {len(self.lines)} {style}")
        self.lines.append(f'    {node_id(a)} {arrow}|"{text(label)}"| {node_id(b)}')


def _disagreement(table: Mapping[str, str | None], app: str, node: str) -> str | None:
    """None when both ends hold the same value, else how they differ."""
    mine, theirs = table.get(app), table.get(node)
    if mine and mine == theirs:
        return None
    if mine and theirs:
        return "differs"
    return f"missing on {node if not theirs else app}"


def tls_problems(lab: Lab, node: Node) -> list[str]:
    """Why the app's TLS connection to Gitaly ``node`` fails, from the lab's settings: a CA
    the app (or the Gitaly node, which calls itself) does not trust, or a certificate whose
    names do not include the host the app dials. Empty when it is not TLS, or is sound."""
    if not node.tls:
        return []
    out = [f"{who.name} does not trust the lab CA (trust_ca: false)"
           for who in dict.fromkeys((lab.app, node)) if not who.trust_ca]
    if node.name not in node.san_names:
        out.append(f"certificate SAN {', '.join(node.san_names)} does not name {node.name}")
    return out


def _settings(hashes: Hashes) -> tuple[tuple[str, Mapping[str, str | None]], ...]:
    return ((SHELL_SECRET, hashes.shell_secret), (GITALY_TOKEN, hashes.gitaly_token))


def mermaid(lab: Lab, hashes: Hashes) -> str:
    """The flowchart source (no ``` fence)."""
    app = lab.app
    edges = _Edges()
    for node in lab.external_gitaly_nodes:
        storages = ", ".join(s.name for s in node.storages)
        edges.add(app.name, "-->", node.name, f"gRPC {node.gitaly_address} ({storages})")
        url = internal_api_url(lab, node)
        edges.add(node.name, "-.->", app.name,
                  f"internal API {url}" if url else "internal API: not set")
    for node in lab.external_gitaly_nodes:
        for setting, table in _settings(hashes):
            why = _disagreement(table, app.name, node.name)
            if why is None:
                edges.add(app.name, "---", node.name, f"{setting} agrees {table[app.name]}",
                          AGREE_STYLE)
            else:
                edges.add(app.name, "---", node.name, f"MISMATCH {setting} {why}",
                          MISMATCH_STYLE)
        if node.tls:
            problems = tls_problems(lab, node)
            if problems:
                edges.add(app.name, "---", node.name, f"TLS FAILS: {'; '.join(problems)}",
                          MISMATCH_STYLE)
            else:
                edges.add(app.name, "---", node.name,
                          f"TLS: CA trusted, certificate names {node.name}", AGREE_STYLE)
    out = ["flowchart LR", f'    subgraph lab ["lab {text(lab.name)}: GitLab '
                           f'{lab.version} ({lab.flavor.value})"]']
    out += [_node_line(n) for n in lab.nodes]
    out.append("    end")
    return "\n".join([*out, *edges.lines, *edges.styles]) + "\n"


def mismatches(lab: Lab, hashes: Hashes) -> list[str]:
    """The settings that disagree, as `setting: app vs node: how` (text beside the picture)."""
    out = [f"{setting}: {lab.app.name} vs {node.name}: {why}"
           for node in lab.external_gitaly_nodes for setting, table in _settings(hashes)
           if (why := _disagreement(table, lab.app.name, node.name)) is not None]
    return out + [f"TLS: {lab.app.name} -> {node.name}: {why}"
                  for node in lab.external_gitaly_nodes for why in tls_problems(lab, node)]


def markdown(lab: Lab, hashes: Hashes) -> str:
    """A fenced block GitLab renders as the picture."""
    return f"```mermaid\n{mermaid(lab, hashes)}```\n"
