"""A campaign: stack up → graph seeded → load + probe + faults → settle → read back → check → report.

Everything it observes goes into the run directory first (history, ledger, probes, faults,
final reads, manifest); the verdict is then computed from that directory alone, exactly as
`feedlab report RUN_DIR` would. Faults are always healed and the stack always stopped,
whether the campaign ends normally, fails, or is interrupted (Ctrl-C, SIGTERM); an interrupted
run still gets a report, marked partial.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import records
from chaos.build import ChaosStack, build
from chaos.schedule import FaultSchedule
from chaos.sweep import Finding, SweepResult, sweep
from harness import seeding, target_metrics
from harness.abort import AbortWatch
from harness.api_seeding import ApiSeeder
from harness.final_reads import MAX_TIMELINES, read_back
from harness.load import LoadGenerator
from harness.machine_speed import interpreter_ms
from harness.probe import FreshnessProbe
from harness.progress import LiveProgress
from harness.runtime.external import NO_CLUSTER, NO_CONFIG, ExternalRuntime, ExternalTarget
from harness.runtime.local import LocalRuntime
from harness.settle import MARKER_AUTHORS, wait_for_fanout, wait_for_markers
from harness.tokens import SharedSecret, TokenCommand, TokenSource
from harness.topology import Topology
from records import FAULTS, JsonlWriter, read_jsonl, write_json
from records.manifest import NO_METRICS_SERIES, NO_METRICS_SOURCE
from workloads.arrivals import ArrivalPlan
from workloads.graph import Graph
from workloads.scenario import Op, Scenario

PROGRESS_EVERY_S = 5.0
DRAIN_S = 12.0   # after the last arrival: the requests in flight get this long to answer
Say = Callable[[str], None]


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


@dataclass
class RunContext:
    """The one object a campaign passes down (no module-level state)."""

    scenario: Scenario
    topo: Topology
    run_dir: Path
    say: Say
    processes: int = 1                 # Locust processes (its multi-process mode when > 1)
    generators: int = 0                # a Locust master and this many generators (its distributed mode)
    remote_generators: int = 0         # of them, joining from elsewhere (`feedlab generator`)
    abort_on_fail: bool = False        # stop the load when a gate marked abort_on_fail fails
    token_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    manifest: records.Manifest = field(default_factory=records.Manifest)
    target: ExternalTarget | None = None   # a service the harness did not start (--target)
    runtime: str = "local"             # how the reference stack runs: "local" processes or "docker"
    tokens: TokenSource = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.target.tokens if self.target is not None else SharedSecret(self.token_secret)

    def write_manifest(self, **updates: Any) -> None:
        self.manifest.set(**updates)
        write_json(self.run_dir / records.MANIFEST, self.manifest.to_json())


class StoreConfig:
    """The target's runtime_config table, written through its store (chaos.ranker.RuntimeConfig)."""

    def __init__(self, topo: Topology) -> None:
        self.address = f"127.0.0.1:{topo.cassandra_proxy_port}"

    def set(self, name: str, value: str) -> None:
        self._execute("INSERT INTO feed.runtime_config (name, value) VALUES (%s, %s)", (name, value))

    def get_all(self) -> dict[str, str]:
        return {r.name: r.value for r in self._execute("SELECT name, value FROM feed.runtime_config")}

    def _execute(self, cql: str, params: tuple[str, ...] = ()) -> list[Any]:
        from targets.feed.store import connect

        cluster, session = connect(self.address, timeout=10, request_timeout=10)
        try:
            return list(session.execute(cql, params))
        finally:
            cluster.shutdown()


Runtime = LocalRuntime | ExternalRuntime


def chaos_stack(runtime: Runtime) -> ChaosStack:
    """What faults may act on: the whole stack in the local runtime; in the external one the
    generator's link only (scenario validation refused every other fault before the start)."""
    if isinstance(runtime, ExternalRuntime):
        return ChaosStack(runtime=runtime, cluster=NO_CLUSTER, links=runtime.toxiproxy.client, config=NO_CONFIG)
    return ChaosStack(runtime=runtime, cluster=runtime.redis, links=runtime.toxiproxy.client,
                      config=StoreConfig(runtime.topo))


def fault_records(windows: list[records.FaultWindow]) -> list[records.FaultWindow]:
    """The faults invoked so far, as recorded now (a copy: a window not healed yet has no end)."""
    return [replace(w, events=list(w.events)) for w in windows if w.start_t is not None]


def schedule_faults(ctx: RunContext, runtime: Runtime, load_start: float) -> FaultSchedule:
    stack = chaos_stack(runtime)
    return FaultSchedule(list(ctx.scenario.faults), lambda p: build(p.action, p.target, p.params, stack),
                         load_start=load_start, load_duration=ctx.scenario.workload.duration, say=ctx.say)


def end_faults(ctx: RunContext, runtime: Runtime, schedule: FaultSchedule) -> None:
    """Always called: heal whatever is broken, record the windows, prove nothing is left."""
    schedule.heal_all()
    with JsonlWriter(ctx.run_dir / FAULTS) as out:
        for window in fault_records(schedule.windows()):
            out.write(window)
    if schedule.errors:
        ctx.write_manifest(chaos_errors=schedule.errors)
    if schedule.planned:
        sweep_stack(ctx, runtime)


def sweep_stack(ctx: RunContext, runtime: Runtime) -> None:
    """Prove nothing is left broken (chaos/sweep.py), repairing what is; recorded for the
    `sweep` check."""
    try:
        if isinstance(runtime, ExternalRuntime):
            result = sweep(runtime.toxiproxy.client, runtime, None, None)
        else:
            result = sweep(runtime.toxiproxy.client, runtime, runtime.redis, StoreConfig(runtime.topo))
    except Exception as exc:  # noqa: BLE001 - a sweep that could not finish proves nothing: a finding
        result = SweepResult(time.time(), [], [Finding("sweep", "the sweep itself failed", False,
                                                       f"{type(exc).__name__}: {exc}")], 0.0)
    write_json(ctx.run_dir / records.SWEEP, result.to_json())
    if result.clean:
        ctx.say(f"chaos: sweep clean ({'; '.join(result.looked_at)})")
    else:
        ctx.say("chaos: sweep found " + "; ".join(
            f"{f.broken} ({'repaired' if f.repaired else 'NOT repaired: ' + str(f.error)})"
            for f in result.findings))


def run_campaign(ctx: RunContext) -> None:
    """Run the scenario and leave a complete (or partial) run directory. Raises on harness errors."""
    sc = ctx.scenario
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    ctx.write_manifest(run_id=ctx.run_dir.name, scenario=sc.name, git_sha=git_sha(), seed=sc.seed,
                       cpu_count=os.cpu_count(), interpreter_ms=interpreter_ms(),
                       started_t=time.time(), ended_t=None, partial=True, timeline_cap=800,
                       load_start_t=None, load_end_t=None, settle_end_t=None,
                       config={"scenario": sc.model_dump(mode="json"), "topology": asdict(ctx.topo),
                               "processes": ctx.processes, "generators": ctx.generators,
                               "remote_generators": ctx.remote_generators},
                       runtime="external" if ctx.target else ctx.runtime,
                       target=ctx.target.describe() if ctx.target else None,
                       slo=sc.slo.manifest(), gates=[g.to_json() for g in sc.gates],
                       checks={name: use.value for name, use in sc.checks.items()},
                       baseline_tolerances=sc.baseline.model_dump(mode="json"))
    graph, graph_folder = seeding.prepare(sc.graph.spec(), progress=lambda m: ctx.say(f"graph: {m}"),
                                          sstables=ctx.target is None)
    seeding.copy_into(graph_folder, ctx.run_dir)
    ctx.write_manifest(graph_hash=graph.digest(), graph={
        "users": graph.spec.users, "follows": graph.edge_count, "celebrities": len(graph.celebrities),
        "push_threshold": graph.spec.push_threshold, "pull_threshold": graph.spec.pull_threshold})
    runtime = _runtime(ctx, graph)
    try:
        runtime.up()
        ctx.say(f"graph: {graph.spec.users} users, {graph.edge_count} follows, "
                f"celebrities {graph.celebrities}; loading")
        t0 = time.monotonic()
        _seed(ctx, runtime, graph, graph_folder)
        ctx.say(f"graph: loaded in {time.monotonic() - t0:.1f} s")
        ctx.write_manifest(graph_load_s=round(time.monotonic() - t0, 1))
        answered = _load_phase(ctx, runtime, graph)
        _settle(ctx, runtime, graph)
        acked = [(r["tweet_id"], int(r["author_id"])) for r in read_jsonl(ctx.run_dir / records.LEDGER)]
        ctx.say(f"final reads: reading back {len(acked)} acknowledged tweets through the API")
        ctx.write_manifest(final_reads_max_timelines=MAX_TIMELINES)
        n = read_back(base_url=runtime.api_url, tokens=ctx.tokens, graph=graph, acked=acked,
                      run_dir=ctx.run_dir, timeline_cap=800, seed=sc.seed, max_timelines=MAX_TIMELINES,
                      extra_timelines=checked_readers(ctx.run_dir, graph, acked),
                      extra_authors=engaged_authors(ctx.run_dir),
                      progress=lambda d, total: ctx.say(f"final reads: {d}/{total}"))
        ctx.write_manifest(final_reads=n, partial=False)
        if isinstance(runtime, ExternalRuntime):
            _restore_graph(ctx, runtime, graph, answered)
    finally:
        ctx.tokens.close()
        _read_target_metrics(ctx, runtime)
        ctx.say("stack: stopping")
        runtime.down()
        ctx.write_manifest(ended_t=time.time())


def _runtime(ctx: RunContext, graph: Graph) -> Runtime:
    if ctx.target is not None:
        return ExternalRuntime(topo=ctx.topo, stack_dir=ctx.run_dir / "stack", target=ctx.target,
                               progress=lambda m: ctx.say(f"target: {m}"))
    target_env = {"FEED_TOKEN_SECRET": ctx.token_secret, "FEED_PUSH_THRESHOLD": str(graph.spec.push_threshold),
                  "FEED_PULL_THRESHOLD": str(graph.spec.pull_threshold), **ctx.scenario.target_env}
    if ctx.runtime == "docker":
        from harness.runtime.docker_runtime import DockerRuntime

        return DockerRuntime(topo=ctx.topo, stack_dir=ctx.run_dir / "stack", target_env=target_env,
                             progress=lambda m: ctx.say(f"stack: {m}"), samples=ctx.run_dir / records.CONTAINERS)
    return LocalRuntime(topo=ctx.topo, stack_dir=ctx.run_dir / "stack", target_env=target_env,
                        progress=lambda m: ctx.say(f"stack: {m}"))


def _seed(ctx: RunContext, runtime: Runtime, graph: Graph, graph_folder: Path) -> None:
    """The graph into the target: SSTables imported into the stack's store (local), or every
    registration and follow through the public API (external)."""
    if not isinstance(runtime, ExternalRuntime):
        seeding.load(graph, graph_folder, ctx.topo, progress=lambda m: ctx.say(f"graph: {m}"))
        return
    tokens = ctx.tokens
    if isinstance(tokens, TokenCommand):
        ctx.say(f"tokens: asking {tokens.describe()} for {len(graph.user_ids):,} users")
        tokens.prefetch(graph.user_ids, progress=lambda d, n: ctx.say(f"tokens: {d:,}/{n:,}"))
    result = _seeder(ctx, runtime).seed(graph)
    ctx.write_manifest(api_seeding=result.to_json())


FOLLOW_OPS = frozenset({Op.FOLLOW, Op.FOLLOW_LARGE, Op.RISING_FOLLOW, Op.UNFOLLOW})


def _seeder(ctx: RunContext, runtime: ExternalRuntime) -> ApiSeeder:
    return ApiSeeder(runtime.api_url, ctx.tokens, lambda m: ctx.say(f"graph: {m}"))


def changed_pairs(run_dir: Path) -> set[tuple[int, int]]:
    """Every (follower, followee) the load asked to follow or unfollow, answered or not (an
    unanswered call may have landed)."""
    return {(int(r["user"]), int(r["target"])) for r in read_jsonl(run_dir / records.HISTORY)
            if r["op"] in FOLLOW_OPS and r.get("user") is not None and str(r.get("target") or "").isdigit()}


def load_was_whole(run_dir: Path, answered: bool) -> bool:
    """Whether the run holds a record of every request its load made: the load was `answered`
    (not aborted, every request answered before Locust stopped) and no generator was lost (what
    it sent since its last shipment never reached the run)."""
    return answered and not any(e["event"] == "lost" for e in read_jsonl(run_dir / records.GENERATORS))


def _restore_graph(ctx: RunContext, runtime: ExternalRuntime, graph: Graph, answered: bool) -> None:
    """Give a service that keeps its follows across runs the seeded graph back, so that the next
    run against it need not seed it again (harness/api_seeding.py's note). Only if every request
    of the load was answered and recorded (`answered`: not an aborted load, nor one whose last
    requests outlived the drain, nor a generator lost) is the graph noted `seeded`: a follow
    with no record cannot be put back. Not done, the next run seeds again: said, not a failure
    of this one."""
    whole = load_was_whole(ctx.run_dir, answered)
    pairs = changed_pairs(ctx.run_dir)
    restored: int | None = None
    try:
        restored = _seeder(ctx, runtime).restore(graph, pairs, seeded=whole)
        ctx.say(f"graph: {restored} follows the load changed put back; " + (
            "the next run need not seed" if whole else
            "the next run seeds again all the same (some requests of the load went unrecorded)"))
    except Exception as exc:  # noqa: BLE001 - the run is judged already: its verdict must not depend on this
        ctx.say(f"graph: the follows the load changed NOT put back, so the next run seeds again: {exc}")
    ctx.write_manifest(api_seeding={**(ctx.manifest.api_seeding or {}), "restored": restored, "noted_seeded":
                                    whole and restored is not None})


def _settle(ctx: RunContext, runtime: Runtime, graph: Graph) -> None:
    deadline = ctx.scenario.settle.deadline
    if isinstance(runtime, ExternalRuntime):
        ctx.say(f"settle: waiting for {MARKER_AUTHORS} marker tweets to reach followers' feeds")
        unfollowed = {(int(c["follower"]), int(c["followee"]))
                      for c in read_jsonl(ctx.run_dir / records.GRAPH_CHANGES) if not c["following"]}
        drained, missing, waited = wait_for_markers(runtime.api_url, ctx.tokens, graph, ctx.run_dir / records.LEDGER,
                                                    deadline, ctx.scenario.seed, unfollowed)
        ctx.say(f"settle: {'every marker arrived' if drained else f'{missing} markers NOT seen'} after {waited:.1f} s")
        ctx.write_manifest(settle_end_t=time.time(), settle={"drained": drained, "by": "markers",
                                                             "markers_missing": missing, "seconds": waited})
        return
    ctx.say("settle: waiting for the fan-out consumer group to drain")
    drained, lag, waited = wait_for_fanout(f"127.0.0.1:{ctx.topo.kafka_proxy_port}", deadline)
    ctx.say(f"settle: {'drained' if drained else f'NOT drained (lag {lag})'} after {waited:.1f} s")
    ctx.write_manifest(settle_end_t=time.time(), settle={"drained": drained, "lag": lag, "seconds": waited})


RETWEET_FOLLOWERS_READ = 3   # followers of each retweeter whose final feeds must show its retweets


def checked_readers(run_dir: Path, graph: Graph, acked: list[tuple[str, int]]) -> set[int]:
    """Readers whose final feeds the checks need beyond nothing_lost's: who changed a follow
    during the run (unfollow, backfill), who follows a pull-tier author that tweeted (celebrity
    merge), and who retweeted, with a few of their followers (a retweet reaches them, and an
    undone one leaves)."""
    changed = {int(c["follower"]) for c in read_jsonl(run_dir / records.GRAPH_CHANGES)}
    pulled = {a for _, a in acked if not graph.is_push_tier(a)}
    retweeters = {int(a["user"]) for a in read_jsonl(run_dir / records.ACTIONS) if a["kind"] == "retweet"}
    around = {f for r in retweeters for f in list(graph.followers_of(r))[:RETWEET_FOLLOWERS_READ]}
    return changed | {f for a in pulled for f in graph.followers_of(a)} | retweeters | around


def engaged_authors(run_dir: Path) -> set[int]:
    """Authors of the tweets the workload liked, retweeted or replied to, whose final counts the
    engagement check reads (a tweet made by a post that got no answer is in no ledger)."""
    engaged = {a["tweet"] for a in read_jsonl(run_dir / records.ACTIONS)
               if a["kind"] in ("like", "retweet", "reply") and a.get("tweet")}
    authors: set[int] = set()
    for o in read_jsonl(run_dir / records.OBSERVATIONS):
        authors.update(int(a) for t, a in zip(o["ids"], o["authors"], strict=False) if t in engaged)
    return authors


def _read_target_metrics(ctx: RunContext, runtime: Runtime) -> None:
    """Keep the target's Prometheus series of the run (a failure is recorded, never fatal; an
    external target without a Prometheus URL has none, and the manifest says so)."""
    start = ctx.manifest.load_start_t
    if start is None:
        return
    url = ctx.topo.prometheus_url if isinstance(runtime, LocalRuntime) else runtime.target.metrics_url
    if url is None:
        ctx.write_manifest(target_metrics_error=NO_METRICS_SOURCE)
        ctx.say(f"metrics: {NO_METRICS_SOURCE}")
        return
    try:
        series = target_metrics.collect(url, start - 5, time.time())
        if isinstance(runtime, ExternalRuntime) and not any(e.get("series") for e in series.values()):
            ctx.write_manifest(target_metrics_error=NO_METRICS_SERIES)
            ctx.say(f"metrics: {NO_METRICS_SERIES}")
            return
        write_json(ctx.run_dir / records.TARGET_METRICS, series)
        failed = [name for name, entry in series.items() if "error" in entry]
        ctx.say(f"metrics: {sum(len(e['series']) for e in series.values())} series from Prometheus"
                + (f"; failed: {', '.join(failed)}" if failed else ""))
    except Exception as exc:  # noqa: BLE001 - Prometheus down must not cost the run its report
        ctx.write_manifest(target_metrics_error=f"{type(exc).__name__}: {exc}"[:300])
        ctx.say(f"metrics: could not read Prometheus: {exc}")


def _load_phase(ctx: RunContext, runtime: Runtime, graph: Graph) -> bool:
    """The load, the probe and the faults; True if every request of the load was answered (and
    recorded) before Locust was stopped."""
    sc = ctx.scenario
    plan = ArrivalPlan.from_phases(sc.model_dump(mode="json")["workload"]["phases"])
    gen = LoadGenerator(run_dir=ctx.run_dir, host=runtime.load_url, plan=plan, tokens=ctx.tokens,
                        seed=sc.seed, processes=ctx.processes, listeners=sc.workload.listeners,
                        generators=ctx.generators, remote_generators=ctx.remote_generators,
                        master_port=ctx.topo.generator_master_port, say=ctx.say)
    probe = FreshnessProbe(base_url=runtime.api_url, graph=graph, tokens=ctx.tokens,
                           run_dir=ctx.run_dir, seed=sc.seed, interval_s=sc.workload.canaries.every,
                           followers_per_canary=sc.workload.canaries.followers)
    try:
        load_start = gen.start()
    except BaseException:
        gen.stop()
        raise
    ctx.write_manifest(load_start_t=load_start,
                       phases=[{"name": p.name, "start_t": load_start + p.start_s, "end_t": load_start + p.end_s}
                               for p in plan.phases])
    schedule = schedule_faults(ctx, runtime, load_start)
    ctx.say(f"load: {len(plan.phases)} phase(s), {plan.duration_s:.0f} s, "
            f"{sum(plan.expected(op) for op in plan.ops):.0f} arrivals planned "
            f"({len(schedule.planned)} fault(s) scheduled, "
            + (f"{ctx.generators} generator(s))" if ctx.generators else f"{ctx.processes} load process(es))"))
    try:
        probe.start()
        schedule.start()
        progress = LiveProgress(ctx.run_dir, plan, load_start)
        watch = AbortWatch(ctx.run_dir, sc.gates if ctx.abort_on_fail else [])
        next_note = load_start + PROGRESS_EVERY_S
        while time.time() < gen.load_end:
            if gen.proc is not None and gen.proc.poll() is not None:
                raise RuntimeError(f"the load generator exited early (code {gen.proc.returncode}); "
                                   f"see {ctx.run_dir / 'locust.log'}")
            time.sleep(0.5)
            if time.time() >= next_note:
                next_note += PROGRESS_EVERY_S
                ctx.say(progress.line(time.time(), schedule.active()))
                breach = watch.breach(ctx.manifest, fault_records(schedule.windows()))
                if breach is not None:
                    ctx.say(f"abort: gate {breach.name} failed: {breach.summary}; stopping the load")
                    ctx.write_manifest(aborted={"gate": breach.name, "summary": breach.summary, "t": time.time()})
                    return False   # no drain: arrivals keep coming until the generator stops
        return wait_for_in_flight(ctx.run_dir, load_end=gen.load_end, deadline=gen.load_end + DRAIN_S)
    finally:
        gen.stop()
        ctx.tokens.close()   # the load processes' token file: nobody reads it any more
        ctx.write_manifest(load_end_t=min(time.time(), gen.load_end) if gen.load_start else time.time())
        probe.stop()
        end_faults(ctx, runtime, schedule)


def wait_for_in_flight(run_dir: Path, *, load_end: float, deadline: float) -> bool:
    """After the last arrival, give the requests still in flight until `deadline` to answer
    (each load process reports its in-flight count once a second): True once every process has
    reported none in flight since `load_end`. A report from before then says nothing of what
    was sent after it: one that found none in flight 0.4 s before the end stopped the load
    under a large follow sent just after it, whose backfill watch then never read (`backfill`
    unknown, and with it a `cassandra-pause` row). A distributed run's lost generator is not
    waited for."""
    while time.time() < deadline:
        latest: dict[str, dict[str, Any]] = {}
        for row in read_jsonl(run_dir / records.ARRIVALS):
            latest[row["process"]] = row
        for e in read_jsonl(run_dir / records.GENERATORS):   # a lost generator reports nothing more
            if e["event"] == "lost":
                latest.pop(e["generator"], None)
        if latest and all(r["t"] >= load_end and not r["in_flight"] for r in latest.values()):
            return True
        time.sleep(0.5)
    return False
