"""Layered waits: each layer polls one probe per node until all pass.

Pure logic over injected callables and an injectable ``Clock``, so unit tests
drive timeouts without sleeping. ``watch`` runs before every poll and raises
``NotReady`` when a container died, so a dead node fails the wait at once
instead of after the timeout.

A layer's probes (one per node) are asked side by side: each is an exec or a call
that mostly waits on the engine or the node. Within a layer the pause between
rounds starts short and grows to ``interval``: a sim node or a reconfigure is often
ready within a fraction of a second, an Omnibus boot takes minutes, and one fixed
pause either polls a slow boot needlessly often or adds up to a whole pause to
every fast one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from lab.errors import LabError, NotReady


@dataclass(frozen=True)
class Verdict:
    """One probe's answer: ready or not, and what it saw (shown while waiting)."""

    ok: bool
    detail: str


# One node's readiness probe: asked again each poll round until it says ok.
Probe = Callable[[], Verdict]


@dataclass(frozen=True)
class Layer:
    name: str
    probes: Mapping[str, Probe]  # node -> its probe
    hint: str = ""  # said when this layer times out


@dataclass
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class LayerTiming:
    name: str
    seconds: float


@dataclass(frozen=True)
class ReadyReport:
    layers: tuple[LayerTiming, ...]

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.layers)


class Progress(Protocol):
    """Told what is being waited for, so a UI can show it while Omnibus boots."""

    def layer_started(self, layer: str, nodes: Sequence[str]) -> None: ...
    def layer_update(self, layer: str, waiting: Mapping[str, str], elapsed: float) -> None: ...
    def layer_done(self, layer: str, seconds: float) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class NullProgress:
    def layer_started(self, layer: str, nodes: Sequence[str]) -> None:
        pass

    def layer_update(self, layer: str, waiting: Mapping[str, str], elapsed: float) -> None:
        pass

    def layer_done(self, layer: str, seconds: float) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class RecordingProgress:
    """A Progress that keeps every event (tests, benchmarks)."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def layer_started(self, layer: str, nodes: Sequence[str]) -> None:
        self.events.append(("start", layer))

    def layer_update(self, layer: str, waiting: Mapping[str, str], elapsed: float) -> None:
        self.events.append(("update", layer))

    def layer_done(self, layer: str, seconds: float) -> None:
        self.events.append(("done", layer))

    def note(self, message: str) -> None:
        self.events.append(("note", message))


def _poll(probe: Probe) -> Verdict:
    try:
        return probe()
    except NotReady:
        raise
    except LabError as exc:
        # Transient: exec into a container that is restarting, a refused connection...
        first = str(exc).strip().splitlines()
        return Verdict(False, first[-1] if first else type(exc).__name__)


def _poll_round(layer: Layer, nodes: Sequence[str], pool: ThreadPoolExecutor | None
                ) -> dict[str, Verdict]:
    """Each of ``nodes``' probe in ``layer`` asked once, side by side when there is a pool."""
    if pool is None or len(nodes) < 2:
        return {node: _poll(layer.probes[node]) for node in nodes}
    asked = {node: pool.submit(_poll, layer.probes[node]) for node in nodes}
    return {node: future.result() for node, future in asked.items()}


def wait_layers(
    layers: Sequence[Layer],
    *,
    timeout: float,
    watch: Callable[[], None] = lambda: None,
    log_tail: Callable[[str], str] = lambda node: "",
    clock: Clock | None = None,
    interval: float = 2.0,
    first_interval: float | None = None,
    growth: float = 1.5,
    progress: Progress | None = None,
) -> ReadyReport:
    """Pass every layer in order within ``timeout`` seconds overall, or raise NotReady.

    Within a layer the pause between rounds is ``first_interval`` (default: ``interval``),
    then ``growth`` times the one before, at most ``interval``.
    """
    clock = clock or Clock()
    progress = progress or NullProgress()
    deadline = clock.now() + timeout
    timings: list[LayerTiming] = []
    widest = max((len(layer.probes) for layer in layers), default=0)
    pool = ThreadPoolExecutor(max_workers=widest, thread_name_prefix="probe") \
        if widest > 1 else None
    try:
        for layer in layers:
            timings.append(_wait_layer(layer, deadline, timeout, watch, log_tail, clock,
                                       (first_interval or interval, interval, growth),
                                       progress, pool))
    finally:
        if pool is not None:
            # A probe still running after a failure ends on its own timeout; don't wait.
            pool.shutdown(wait=False, cancel_futures=True)
    return ReadyReport(tuple(timings))


def _wait_layer(layer: Layer, deadline: float, timeout: float, watch: Callable[[], None],
                log_tail: Callable[[str], str], clock: Clock,
                pauses: tuple[float, float, float], progress: Progress,
                pool: ThreadPoolExecutor | None) -> LayerTiming:
    pause, longest, growth = pauses
    started = clock.now()
    waiting = {node: "not checked yet" for node in layer.probes}
    progress.layer_started(layer.name, list(layer.probes))
    while True:
        watch()
        for node, verdict in _poll_round(layer, list(waiting), pool).items():
            if verdict.ok:
                del waiting[node]
            else:
                waiting[node] = verdict.detail
        now = clock.now()
        if not waiting:
            break
        progress.layer_update(layer.name, dict(waiting), now - started)
        if now >= deadline:
            node, last = next(iter(waiting.items()))
            raise NotReady(node, f"{layer.name}: still waiting after {timeout:g}s "
                           f"(last status: {last})", log_tail(node),
                           hint=layer.hint or "raise --timeout, or see `lab logs "
                           f"{node}` and `lab status`")
        clock.sleep(min(pause, max(0.0, deadline - now)))
        pause = min(pause * growth, longest)
    seconds = clock.now() - started
    progress.layer_done(layer.name, seconds)
    return LayerTiming(layer.name, seconds)
