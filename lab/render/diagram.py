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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from lab.model.topology import Lab, Node
from lab.render.gitlab_rb import internal_api_url, token_of
from lab.render.secrets import LabSecrets, fingerprint, shell_secret

SHELL_SECRET = "gitlab_shell.secret_token"
# The app's gitlab_rails['gitaly_token'] against the Gitaly node's auth token.
GITALY_TOKEN = "gitaly auth token"
STORAGE_NAME = "storage name"
TLS = "TLS"
AGREE_STYLE = "stroke:#2da44e"
MISMATCH_STYLE = "stroke:#d1242f,stroke-width:3px,color:#d1242f"


@dataclass(frozen=True)
class Hashes:
    """Per node, the fingerprint of each secret it uses (None: it has none)."""

    shell_secret: Mapping[str, str | None]
    gitaly_token: Mapping[str, str | None]
    # A Praefect node's internal token, which it sends to the Gitaly nodes behind it
    # (its gitaly_token is the external one, which it accepts).
    internal_token: Mapping[str, str | None] = field(default_factory=dict)


def rendered_hashes(lab: Lab, sec: LabSecrets) -> Hashes:
    """What the lab directory gives each node."""
    shell: dict[str, str | None] = {}
    for node in lab.nodes:
        data = sec.for_node(node)
        shell[node.name] = fingerprint(shell_secret(data)) if data else None
    tokens = {n.name: fingerprint(token_of(lab, sec, n)) for n in lab.nodes}
    internal = {n.name: fingerprint(sec.praefect_token) for n in lab.praefect_nodes}
    return Hashes(shell, tokens, internal)


def grpc_links(lab: Lab) -> Iterator[tuple[Node, Node]]:
    """(client, server) for each gRPC link: the app to each Gitaly node it dials directly
    and to each Praefect, each Praefect to the Gitaly nodes behind it."""
    behind = {n.name for n in lab.cluster_gitaly_nodes}
    for node in lab.external_gitaly_nodes:
        if node.name not in behind:
            yield lab.app, node
    for praefect in lab.praefect_nodes:
        yield lab.app, praefect
        for name in praefect.backends:
            yield praefect, lab.node(name)


def node_id(name: str) -> str:
    # A prefix keeps Mermaid keywords (`end`, `graph`) and dashes out of ids.
    return "n_" + re.sub(r"\W", "_", name)


def text(value: str) -> str:
    """A label Mermaid shows as written: quotes and angle brackets as entities."""
    return (value.replace("&", "#amp;").replace('"', "#quot;")
            .replace("<", "#lt;").replace(">", "#gt;"))


def _node_line(node: Node) -> str:
    lines = [f"<b>{text(node.name)}</b>", text(" + ".join(r.value for r in node.roles))]
    if node.is_praefect:
        lines += [text(f"virtual storage {s.name}, {node.replicas} replicas")
                  for s in node.storages]
    else:
        lines += [text(f"storage {s.name}: {s.repositories_path}") for s in node.storages]
    if node.gitaly_only or node.is_praefect:
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


def _disagreement(table: Mapping[str, str | None], app: str, node: str,
                  sent: Mapping[str, str | None] | None = None) -> str | None:
    """None when both ends hold the same value, else how they differ (``sent``: what the
    client end holds, when it is not its entry in ``table``)."""
    mine, theirs = (sent if sent is not None else table).get(app), table.get(node)
    if mine and mine == theirs:
        return None
    if mine and theirs:
        return "differs"
    return f"missing on {node if not theirs else app}"


def tls_problems(lab: Lab, node: Node, client: Node | None = None) -> list[str]:
    """Why ``client``'s (default: the app's) TLS connection to Gitaly or Praefect ``node``
    fails, from the lab's settings: a CA the client (or the node, which calls itself) does
    not trust, or a certificate whose names do not include the host the client dials.
    Empty when it is not TLS, or is sound."""
    if not node.tls:
        return []
    out = [f"{who.name} does not trust the lab CA (trust_ca: false)"
           for who in dict.fromkeys((client or lab.app, node)) if not who.trust_ca]
    if node.name not in node.san_names:
        out.append(f"certificate SAN {', '.join(node.san_names)} does not name {node.name}")
    return out


@dataclass(frozen=True)
class _Check:
    """Something two nodes must agree on, and whether they do."""

    a: Node
    b: Node
    setting: str
    problems: tuple[str, ...]  # empty: they agree
    agreed: str = ""  # the shared hash, or what is sound about a TLS link

    @property
    def good(self) -> str:
        return f"TLS: {self.agreed}" if self.setting == TLS else \
            f"{self.setting} agrees {self.agreed}"

    @property
    def bad(self) -> str:
        return f"TLS FAILS: {'; '.join(self.problems)}" if self.setting == TLS else \
            f"MISMATCH {self.setting} {self.problems[0]}"

    def lines(self) -> list[str]:
        if self.setting == TLS:
            return [f"TLS: {self.a.name} -> {self.b.name}: {why}" for why in self.problems]
        return [f"{self.setting}: {self.a.name} vs {self.b.name}: {why}"
                for why in self.problems]


def _checks(lab: Lab, hashes: Hashes) -> Iterator[_Check]:
    """Per gRPC link: the shell secret between the app and a Gitaly node (its hooks call
    the app), the Gitaly token (a Praefect sends its internal one), the storage name a
    Praefect gives the node, and a TLS link's trust and certificate name."""
    def pair(why: str | None) -> tuple[str, ...]:
        return () if why is None else (why,)

    for client, server in grpc_links(lab):
        if server.gitaly_only:
            why = _disagreement(hashes.shell_secret, lab.app.name, server.name)
            yield _Check(lab.app, server, SHELL_SECRET, pair(why),
                         str(hashes.shell_secret.get(lab.app.name)))
        sent = hashes.internal_token if client.is_praefect else None
        why = _disagreement(hashes.gitaly_token, client.name, server.name, sent)
        yield _Check(client, server, GITALY_TOKEN, pair(why),
                     str(hashes.gitaly_token.get(server.name)))
        if client.is_praefect:
            # Praefect names each Gitaly node's storage after the node.
            names = [st.name for st in server.storages]
            why = None if server.name in names else \
                f"praefect says {server.name}, the node serves {', '.join(names)}"
            yield _Check(client, server, STORAGE_NAME, pair(why), server.name)
        if server.tls:
            yield _Check(client, server, TLS, tuple(tls_problems(lab, server, client)),
                         f"CA trusted, certificate names {server.name}")


def mermaid(lab: Lab, hashes: Hashes) -> str:
    """The flowchart source (no ``` fence)."""
    app = lab.app
    edges = _Edges()
    for client, server in grpc_links(lab):
        storages = ", ".join(s.name for s in server.storages)
        edges.add(client.name, "-->", server.name, f"gRPC {server.gitaly_address} ({storages})")
    for node in lab.external_gitaly_nodes:
        url = internal_api_url(lab, node)
        edges.add(node.name, "-.->", app.name,
                  f"internal API {url}" if url else "internal API: not set")
    for check in _checks(lab, hashes):
        if check.problems:
            edges.add(check.a.name, "---", check.b.name, check.bad, MISMATCH_STYLE)
        else:
            edges.add(check.a.name, "---", check.b.name, check.good, AGREE_STYLE)
    out = ["flowchart LR", f'    subgraph lab ["lab {text(lab.name)}: GitLab '
                           f'{lab.version} ({lab.flavor.value})"]']
    out += [_node_line(n) for n in lab.nodes]
    out.append("    end")
    return "\n".join([*out, *edges.lines, *edges.styles]) + "\n"


def mismatches(lab: Lab, hashes: Hashes) -> list[str]:
    """The settings that disagree, as `setting: app vs node: how` (text beside the picture)."""
    return [line for check in _checks(lab, hashes) for line in check.lines()]


def markdown(lab: Lab, hashes: Hashes) -> str:
    """A fenced block GitLab renders as the picture."""
    return f"```mermaid\n{mermaid(lab, hashes)}```\n"
