"""Run scenarios: one scenario on a lab from the pool, and a plan of many, group by group.

Each step is dispatched through the step registry (``steps.STEPS``); faults a
scenario injected are undone with the verb the registry names, whatever happened.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from lab.client.gitlab import GitLab
from lab.errors import LabError
from lab.lifecycle.contract import LabHandle
from lab.model.topology import Lab
from lab.scenario import evidence as ev
from lab.scenario import patterns
from lab.scenario.definition import Expected, Scenario, ScenarioLabs, Step
from lab.scenario.plan import PlanItem, plan, room_for
from lab.scenario.pool import LabPool, Say, UpFn, default_up, wait_gitaly
from lab.scenario.results import Evidence, Outcome, ScenarioResult, StepResult
from lab.scenario.steps import STEPS, Registry, Run
from lab.store.ownership import keep_lab
from lab.store.state import LabClaim

ConnectFn = Callable[[LabHandle], GitLab]


def default_connect(running: LabHandle) -> GitLab:
    return GitLab.connect(running.http_url, running.admin_token)


#: A line a node printed reaches Docker's log a moment later (the container's stream goes
#: through its shim to the daemon): a log expectation not met at once is read again for
#: this long. A step's answer can come before its log line: seen on a loaded machine,
#: where the app's "Unable to save project" line came after its 400.
LOG_SETTLE = 3.0
LOG_SETTLE_INTERVAL = 0.25


def check_expectation(step: Step, succeeded: bool, output: str,
                      logs: Callable[[str], str], *, settle: float = LOG_SETTLE) -> str | None:
    """Why the step's expectation is not met, or None."""
    exp = step.expect
    if exp.expected is Expected.SUCCESS and not succeeded:
        return "expected success, but the step failed"
    if exp.expected is Expected.FAIL and succeeded:
        return "expected the step to fail, but it succeeded"
    if exp.output and not patterns.search(exp.output, output):
        return f"the output does not match /{exp.output}/"
    if exp.log:
        deadline = time.monotonic() + settle
        while not patterns.search(exp.log.pattern, logs(exp.log.node)):
            if time.monotonic() >= deadline:
                return f"no line of {exp.log.node}'s log (since the scenario started) " \
                    f"matches /{exp.log.pattern}/"
            time.sleep(LOG_SETTLE_INTERVAL)
    return None


def _run_step(run: Run, step: Step, label: str, steps: Registry) -> StepResult:
    t0 = time.monotonic()
    try:
        succeeded, output = steps[step.kind].run(run, step)
    except LabError as exc:  # e.g. exec on a stopped node: the step failed, say why
        succeeded, output = False, str(exc)
    output = run.redact(output)
    problem = check_expectation(step, succeeded, output, lambda n: ev.node_logs(run, n))
    return StepResult(label, step.line, succeeded, output, time.monotonic() - t0, problem)


def run_scenario(scenario: Scenario, labs: ScenarioLabs, pool: LabPool, *,
                 connect: ConnectFn = default_connect,
                 collect: ev.CollectFn | None = None,
                 steps: Registry = STEPS) -> ScenarioResult:
    """Run one scenario; with ``collect``, a failure's lab is bundled before it is restored."""
    t0 = time.monotonic()

    def result(outcome: Outcome, message: str, done: tuple[StepResult, ...] = (),
               evidence: Evidence | None = None, bundle: str = "") -> ScenarioResult:
        return ScenarioResult(scenario.name, scenario.source, outcome, time.monotonic() - t0,
                              done, message, evidence, labs.base.name, labs.base.flavor.value,
                              str(labs.base.version), bundle)

    try:
        running = pool.get(labs.base, labs.target)
    except LabError as exc:
        # Whatever state the lab got into is the evidence; then it goes.
        bundle, why_not = ev.bundle(collect, pool.running(labs.base.name), scenario, labs)
        pool.discard(labs.base.name)
        return result(Outcome.ERROR, f"could not put the lab into this scenario's state: {exc}"
                      + why_not, bundle=bundle)
    run = Run(scenario, labs, running, connect(running), time.time(),
              f"{scenario.name[:24]}-{secrets.token_hex(3)}".replace("_", "-"),
              wait_gitaly(labs.base, labs.target))
    done: list[StepResult] = []
    evidence: Evidence | None = None
    bundle, why_not = "", ""
    todo = [("given", s) for s in scenario.given_faults] + [("", s) for s in scenario.steps]
    try:
        for prefix, step in todo:
            outcome = _run_step(run, step, f"{prefix} {step.label}".strip(), steps)
            done.append(outcome)
            if not outcome.ok:
                evidence = ev.evidence(run, step, outcome)
                # Before anything is undone: faults and given.set still in place.
                bundle, why_not = ev.bundle(collect, running, scenario, labs)
                break
    finally:
        cleanup = _undo_faults(run)
    if cleanup:
        # A node we could not restore leaves the lab in an unknown state.
        pool.discard(labs.base.name)
    passed = evidence is None and not cleanup
    message = (evidence.problem if evidence else cleanup) + why_not
    return result(Outcome.PASSED if passed else Outcome.FAILED, message, tuple(done), evidence,
                  bundle)


def _undo_faults(run: Run) -> str:
    problems = []
    for (node, _), undo in list(run.faults.items()):
        try:
            run.running.act(node, undo)
        except LabError as exc:
            problems.append(f"could not {undo} {node} after the scenario: "
                            f"{run.redact(str(exc))}")
    if run.faults and not problems:
        try:
            run.wait_restored(node for node, _ in run.faults)
        except LabError as exc:
            problems.append(f"lab not ready after undoing faults: {run.redact(str(exc))}")
    run.faults.clear()
    return "\n".join(problems)


# --- a plan of many ------------------------------------------------------------------

def skipped(item: PlanItem, flavor: str) -> ScenarioResult:
    sc = item.scenario
    return ScenarioResult(sc.name, sc.source, Outcome.SKIPPED, 0.0,
                          message=item.why_skipped
                          or f"only for {', '.join(sc.flavors)}; this run uses {flavor}",
                          flavor=flavor)


def _images_first(labs: Sequence[Lab]) -> None:
    """Make each image present before labs boot side by side (else each would build it)."""
    from lab.engine.images import image_for
    from lab.lifecycle.lab_image import ensure_image

    done: set[str] = set()
    for lab in labs:
        image = image_for(lab)
        if image not in done:
            ensure_image(lab, image)
            done.add(image)


def run_plan(planned: Sequence[PlanItem], *, flavor: str = "sim",
             leave_at_base: bool = False, up: UpFn = default_up,
             connect: ConnectFn = default_connect, say: Say | None = None,
             on_result: Callable[[ScenarioResult], None] | None = None,
             collect: ev.CollectFn | None = None, jobs: int | None = None,
             steps: Registry = STEPS, on: LabHandle | None = None) -> list[ScenarioResult]:
    """Run a plan group by group; independent groups side by side when there is room.

    ``on``: run every item on this running lab (`lab run --lab NAME`, a plan from
    ``plan_on``): nothing boots, each scenario's changes are undone, the lab stays up.

    ``jobs``: how many groups (labs) at once; None: ``room_for`` the groups' labs
    (with the default ``up``; one at a time with a caller's own).
    Each group has its own pool, so a lab is only ever used by one thread; results
    come back in plan order.
    """
    # Claims guard real labs; a caller's own ``up`` (tests, benches) manages its labs itself.
    claim = LabClaim if up is default_up else None
    if on is not None:  # attaching to it already asked Docker and Compose
        borrowed = on
        up, jobs = (lambda lab: borrowed), 1
    if up is default_up and any(item.labs is not None for item in planned):
        # No Docker (exit 3) or no Compose tool (exit 5): one clear error, not one per scenario.
        from lab.engine.compose import detect
        from lab.engine.docker import check_reachable

        check_reachable()
        detect()
    groups: dict[str, list[tuple[int, PlanItem, ScenarioLabs]]] = {}
    results: dict[int, ScenarioResult] = {}
    for i, item in enumerate(planned):
        if item.labs is None:
            results[i] = skipped(item, flavor)
        else:
            groups.setdefault(item.group, []).append((i, item, item.labs))
    told = threading.Lock()  # say and on_result are the caller's: one call at a time
    # Set when the main thread is interrupted (Ctrl-C, SIGTERM): each group ends its
    # current scenario and downs its lab instead of running the rest of the plan.
    stop = threading.Event()

    def tell(text: str) -> None:
        if say:
            with told:
                say(text)

    def run_group(items: list[tuple[int, PlanItem, ScenarioLabs]]) -> None:
        with LabPool(leave_at_base=leave_at_base, up=up, say=tell, claim=claim,
                     borrowed=on is not None,
                     on_kept=keep_lab if claim is not None else None) as pool:
            for i, item, labs in items:
                if stop.is_set():
                    return
                tell(f"scenario {item.scenario.name}")
                results[i] = run_scenario(item.scenario, labs, pool, connect=connect,
                                          collect=collect, steps=steps)
                if on_result:
                    with told:
                        on_result(results[i])

    todo = list(groups.values())
    if jobs is None:  # a caller's own ``up`` (tests) runs one group at a time unless asked
        jobs = room_for([g[0][2].base for g in todo]) if up is default_up else 1
    if jobs <= 1 or len(todo) <= 1:
        for items in todo:
            run_group(items)
    else:
        if up is default_up:
            _images_first([items[0][2].base for items in todo])
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="lab-group") as ex:
            try:
                # Held while the groups are handed over: a Ctrl-C inside submit (Thread.start
                # waits for the new thread) would leave a running group's thread unknown to
                # the executor, which then would not wait for it to down its lab. Threads
                # started meanwhile inherit the mask; Python runs handlers in the main thread.
                held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                try:
                    futures = [ex.submit(run_group, items) for items in todo]
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, held)
                for future in futures:
                    future.result()  # a bug in one group surfaces here, after the rest finished
            except KeyboardInterrupt:
                stop.set()  # leaving the block waits for the groups to clean up
                raise
    for i, item in enumerate(planned):
        if item.labs is None and on_result:
            on_result(results[i])
    return [results[i] for i in sorted(results)]


def run_scenarios(scenarios: Sequence[Scenario], *, flavor: str = "sim",
                  versions: Sequence[str | None] = (None,), leave_at_base: bool = False,
                  up: UpFn = default_up, connect: ConnectFn = default_connect,
                  say: Say | None = None,
                  on_result: Callable[[ScenarioResult], None] | None = None,
                  collect: ev.CollectFn | None = None, jobs: int | None = None,
                  steps: Registry = STEPS) -> list[ScenarioResult]:
    """``plan`` the scenarios over the release matrix ``versions``, then ``run_plan``."""
    return run_plan(plan(scenarios, flavor=flavor, versions=versions), flavor=flavor,
                    leave_at_base=leave_at_base, up=up, connect=connect, say=say,
                    on_result=on_result, collect=collect, jobs=jobs, steps=steps)
