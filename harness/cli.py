"""The `feedlab` command.

Exit codes: 0 every check and gate passed; 1 a check or gate failed (an aborted run too); 2 an
error (bad input, a component that would not start, an interrupted run), a verdict that could
not be decided, or an invalid run (the load generator could not keep up, or the machine was
busy with others' work).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.paths import REPO, runs_dir
from harness.runtime.process import ComponentError, pid_alive
from harness.topology import MAX_BASE_PORT, PORT_BLOCK, Topology

if TYPE_CHECKING:
    from harness.checks import CheckResult
    from harness.runtime.external import ExternalTarget
    from workloads.scenario import Scenario

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Load-testing and chaos-verification harness for Twitter/X-style news feeds.")
# Piped (a CI log), rich would assume 80 columns and wrap every table row; a log has room.
_PIPED_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
console = Console(stderr=False, highlight=False, width=_PIPED_WIDTH)
err = Console(stderr=True, highlight=False, width=_PIPED_WIDTH)

# Target defect switches (targets/feed/settings.py): a share of events, or on/off.
DEFECTS: dict[str, tuple[str, str]] = {
    "drop-fanout": ("FEED_DEFECT_DROP_FANOUT", "share"),
    "lose-counter-events": ("FEED_DEFECT_LOSE_COUNTER_EVENTS", "share"),
    "ignore-idempotency": ("FEED_DEFECT_IGNORE_IDEMPOTENCY", "flag"),
    "skip-unfollow-filter": ("FEED_DEFECT_SKIP_UNFOLLOW_FILTER", "flag"),
    "skip-delete-fanout": ("FEED_DEFECT_SKIP_DELETE_FANOUT", "flag"),
    "never-backfill": ("FEED_DEFECT_NEVER_BACKFILL", "flag"),
    "break-celebrity-merge": ("FEED_DEFECT_BREAK_CELEBRITY_MERGE", "flag"),
    "disable-breaker-fallback": ("FEED_DEFECT_DISABLE_BREAKER_FALLBACK", "flag"),
    "duplicate-retweets": ("FEED_DEFECT_DUPLICATE_RETWEETS", "flag"),
    "keep-deleted-retweets": ("FEED_DEFECT_KEEP_DELETED_RETWEETS", "flag"),
    "skip-retweet-fanout": ("FEED_DEFECT_SKIP_RETWEET_FANOUT", "flag"),
    "skip-retweet-undo": ("FEED_DEFECT_SKIP_RETWEET_UNDO", "flag"),
    "skip-reply-counts": ("FEED_DEFECT_SKIP_REPLY_COUNTS", "flag"),
    "slow-retry": ("FEED_DEFECT_SLOW_RETRY_S", "seconds"),
    "drop-signals": ("FEED_DEFECT_DROP_SIGNALS", "share"),
    "slow-failover": ("FEED_DEFECT_SLOW_FAILOVER", "flag"),
}


class RuntimeKind(StrEnum):
    local = "local"
    docker = "docker"


RuntimeOption = Annotated[RuntimeKind, typer.Option(
    help="How the reference stack runs: `local` processes, or `docker` containers (images built here "
         "by `feedlab images`; a Docker engine is started when none runs).")]
BasePort = Annotated[int, typer.Option(help=f"First port of the stack's {PORT_BLOCK}-port block (all on 127.0.0.1).",
                                       min=1024, max=MAX_BASE_PORT)]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _say(message: str) -> None:
    # escaped: messages quote gate names like feed[steady], which rich would take for markup
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {escape(message)}")


def _parse_defects(values: list[str]) -> dict[str, str]:
    env = {}
    for v in values:
        name, _, value = v.partition("=")
        if name not in DEFECTS:
            raise _fail(f"--defect {v!r}: unknown defect {name!r} (known: {', '.join(DEFECTS)})")
        var, kind = DEFECTS[name]
        if kind == "flag":
            if value not in ("", "1"):
                raise _fail(f"--defect {v!r}: {name} is on or off; give it without '='")
            env[var] = "1"
            continue
        if kind == "seconds":
            try:
                if not 0 < float(value) <= 3600:
                    raise ValueError
            except ValueError:
                raise _fail(f"--defect {v!r}: {name} needs seconds after '=', a number within (0, 3600]") from None
            env[var] = value
            continue
        try:
            if not 0 <= float(value or "1") <= 1:
                raise ValueError
        except ValueError:
            raise _fail(f"--defect {v!r}: the share after '=' must be a number within [0, 1]") from None
        env[var] = value or "1"
    return env


def _sigterm_as_interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario (see `feedlab scenarios`) or a YAML file.")
                        ] = "smoke",
    duration: Annotated[float | None, typer.Option(
        help="Stretch the load to this many seconds (phases, ramps and fault times scale with it).", min=10)] = None,
    rate_scale: Annotated[float | None, typer.Option(help="Multiply every arrival rate by this.")] = None,
    users: Annotated[int | None, typer.Option(help="Override the graph's user count.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the graph and workload seed.")] = None,
    processes: Annotated[int, typer.Option(
        help="Locust processes for the load (its multi-process mode; one per core at most).", min=1)] = 1,
    generators: Annotated[int, typer.Option(
        help="Run the load as a Locust master and this many generator processes (Locust's distributed mode); "
             "each sends its records to the master.", min=0, rich_help_panel="Load generators")] = 0,
    remote_generators: Annotated[int, typer.Option(
        help="Of --generators, how many join from elsewhere (`feedlab generator --master 127.0.0.1:PORT`) "
             "instead of being started here.", min=0, rich_help_panel="Load generators")] = 0,
    defect: Annotated[list[str], typer.Option(
        help=f"Turn on a target defect: NAME[=SHARE|=SECONDS]; one of {', '.join(DEFECTS)}.")] = [],  # noqa: B006
    base_port: BasePort = 19000,
    runtime: RuntimeOption = RuntimeKind.local,
    run_dir: Annotated[Path | None, typer.Option(help="Where to write the run (default: runs/<time>-<name>).")] = None,
    abort_on_fail: Annotated[bool, typer.Option(
        "--abort-on-fail", help="Stop the load as soon as a gate marked abort_on_fail fails.")] = False,
    baseline: Annotated[Path | None, typer.Option(
        help="A run directory to compare this run with; a regression beyond tolerance fails the run.")] = None,
    target: Annotated[str | None, typer.Option(
        help="Aim at your own feed service at this base URL (http://HOST:PORT) instead of starting the "
             "reference stack; loopback only unless --allow-host names its host.", rich_help_panel="Your own target")
                      ] = None,
    token_secret_file: Annotated[Path | None, typer.Option(
        help="With --target: a file holding the service's HS256 token secret (the harness signs its users' "
             "tokens; `feedlab up` writes one).", rich_help_panel="Your own target")] = None,
    token_command: Annotated[str | None, typer.Option(
        help="With --target: a command that prints a bearer token for a user; {user} is replaced by the id.",
        rich_help_panel="Your own target")] = None,
    metrics_url: Annotated[str | None, typer.Option(
        help="With --target: the Prometheus that scrapes the service (without it the gates and checks on the "
             "target's metrics are shown, not judged).", rich_help_panel="Your own target")] = None,
    allow_host: Annotated[list[str], typer.Option(
        help="Allow load and faults to this host (repeatable); by default feedlab sends them to loopback only.",
        rich_help_panel="Your own target")] = [],  # noqa: B006
) -> None:
    """Run a campaign: stack up, load, faults, checks, report; exit code is the verdict."""
    from harness.campaign import RunContext, run_campaign
    from workloads.scenario import ScenarioError, resolve

    cores = os.cpu_count() or 1
    if processes > cores:
        raise _fail(f"--processes {processes}: this machine has {cores} cores; more load processes than cores "
                    "would measure the generator, not the target")
    if generators and processes > 1:
        raise _fail("--generators and --processes are two ways to run several load processes: give one")
    if remote_generators > generators:
        raise _fail(f"--remote-generators {remote_generators}: more than the {generators} --generators of the run")
    if generators - remote_generators > cores:
        raise _fail(f"--generators {generators}: this machine has {cores} cores; start the others elsewhere "
                    "(--remote-generators)")
    try:
        sc = resolve(scenario).with_overrides(duration_s=duration, rate_scale=rate_scale, users=users, seed=seed,
                                              target_env=_parse_defects(defect))
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if baseline is not None and not (baseline / "manifest.json").exists():
        raise _fail(f"--baseline {baseline}: not a run directory (no manifest.json)")
    run_path = run_dir or runs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{sc.name}"
    if run_path.exists() and any(run_path.iterdir()):
        raise _fail(f"run directory {run_path} exists and is not empty")
    block = sc.target   # the scenario's `target:`, each field overridden by its flag
    if block is not None:
        target = target or block.url
        if token_secret_file is None and token_command is None and block.token_secret_file:
            token_secret_file = Path(block.token_secret_file)
        metrics_url = metrics_url or block.metrics_url
    external = _external_target(sc, target, token_secret_file, token_command, metrics_url, allow_host,
                                defect) if target is not None else None
    if external is not None and runtime is not RuntimeKind.local:
        raise _fail("--runtime goes without --target: it says how the reference stack runs, and with --target "
                    "feedlab starts none")
    if external is None:
        _refuse_fault_problems(sc, external=False)
        for name, value in (("--token-secret-file", token_secret_file), ("--token-command", token_command),
                            ("--metrics-url", metrics_url), ("--allow-host", allow_host or None)):
            if value is not None:
                raise _fail(f"{name} goes with --target (the reference stack makes its own tokens and metrics, "
                            "on 127.0.0.1)")
    else:
        _say(f"target {external.url.given}: feedlab will register {sc.graph.spec().users:,} users (ids 1 to "
             f"{sc.graph.spec().users:,}) and follow, post, like and delete as them there: aim it only at a "
             "service you own and can wipe")
    ctx = RunContext(scenario=sc, topo=Topology(base_port=base_port), run_dir=run_path, say=_say,
                     processes=processes, generators=generators, remote_generators=remote_generators,
                     abort_on_fail=abort_on_fail, target=external, runtime=runtime.value)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    _say(f"run {sc.name}: {sc.description}\n         run directory: {run_path}")
    problem = None
    try:
        run_campaign(ctx)
    except KeyboardInterrupt:
        problem = "interrupted: faults healed, stack stopped; the report is partial"
    except ComponentError as exc:
        problem = str(exc) + (f"\n--- last lines of its log ---\n{exc.tail}" if exc.tail else "")
    except Exception as exc:  # noqa: BLE001 - any harness error: exit 2 with the reason, report what we have
        problem = f"{type(exc).__name__}: {exc}"
    if baseline is not None and not problem and (run_path / "manifest.json").exists():
        _compare(baseline, run_path, None)
    code = _report(run_path) if (run_path / "manifest.json").exists() else 2
    if problem:
        err.print(f"[bold red]error:[/] {escape(problem)}")
        raise typer.Exit(2)
    raise typer.Exit(code)


def _refuse_fault_problems(sc: Scenario, *, external: bool) -> None:
    from chaos.catalogue import runtime_problems

    problems = runtime_problems(((f.action, f.target) for f in sc.faults), external=external)
    if problems:
        raise _fail(f"scenario {sc.name}: " + "; ".join(problems))


def _external_target(sc: Scenario, url: str, secret_file: Path | None, command: str | None,
                     metrics_url: str | None, allow_host: list[str], defect: list[str]) -> ExternalTarget:
    """--target and its companions, checked before anything starts."""
    from harness.runtime.external import ExternalTarget
    from harness.safety import UnsafeTarget, check_target
    from harness.tokens import SharedSecret, TokenCommand, TokenError, TokenSource

    if defect or sc.target_env:
        raise _fail(f"{'--defect' if defect else f'scenario {sc.name}: target_env'} switches the reference "
                    "stack's settings and defects; with --target, start it with `feedlab up --defect NAME` and "
                    "aim --target at it")
    try:
        where = check_target(url, allow_host)
        metrics = check_target(metrics_url, allow_host, flag="--metrics-url").url if metrics_url else None
    except UnsafeTarget as exc:
        raise _fail(str(exc)) from None
    if where.scheme != "http":
        raise _fail(f"--target {url!r}: only http for now (the load goes through a TCP proxy on 127.0.0.1, "
                    "where an https certificate for the service's name would not match); give its plain HTTP address")
    if where.prefix:
        raise _fail(f"--target {url!r}: a path prefix ({where.prefix}) is not supported yet; the API must be at "
                    "the root of the address (/v1/...)")
    if secret_file is None and command is None:
        raise _fail("--target needs a token source: --token-secret-file FILE (HS256) or --token-command CMD")
    if secret_file is not None and command is not None:
        raise _fail("give one token source, not both: --token-secret-file or --token-command")
    tokens: TokenSource
    try:
        if secret_file is not None:
            try:
                tokens = SharedSecret(secret_file.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise _fail(f"--token-secret-file {secret_file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise _fail(f"--token-secret-file {secret_file}: not text (UTF-8)") from None
        else:
            tokens = TokenCommand(str(command))
    except TokenError as exc:
        raise _fail(str(exc)) from None
    _refuse_fault_problems(sc, external=True)
    return ExternalTarget(url=where, tokens=tokens, metrics_url=metrics)


def _report(run_dir: Path, judged_by: Scenario | None = None) -> int:
    from harness.checks import exit_code
    from reports.terminal import print_verdict_table

    results, path = _judge(run_dir, judged_by)
    print_verdict_table(results, console)
    console.print(f"report: {path}")
    return exit_code(results)


def _judge(run_dir: Path, judged_by: Scenario | None = None) -> tuple[list[CheckResult], Path]:
    """Every check and gate of a run directory, its reports written; (results, report path)."""
    from harness.rundata import load_run
    from harness.verdict import judge_run
    from reports import write_reports

    run = load_run(run_dir)
    if judged_by is not None:   # another scenario's bounds, gates and check uses; the run stays as recorded
        run.manifest.set(slo=judged_by.slo.manifest(), gates=[g.to_json() for g in judged_by.gates],
                            checks={k: v.value for k, v in judged_by.checks.items()}, judged_by=judged_by.name)
    results = list(judge_run(run))
    return results, write_reports(run_dir, run, results)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Recompute every check and the report from a run directory alone."""
    _require_run_dir(run_dir)
    raise typer.Exit(_report(run_dir))


def _require_run_dir(run_dir: Path) -> None:
    if not (run_dir / "manifest.json").exists():
        raise _fail(f"{run_dir} is not a run directory (no manifest.json)")


def _optional_scenario(name_or_file: str | None) -> Scenario | None:
    from workloads.scenario import ScenarioError, resolve

    try:
        return resolve(name_or_file) if name_or_file else None
    except ScenarioError as exc:
        raise _fail(str(exc)) from None


@app.command()
def gate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    scenario: Annotated[str | None, typer.Option(
        help="Judge with this scenario's bounds, gates and checks instead of the run's own.")] = None,
) -> None:
    """Judge a recorded run for CI: exit 0 pass, 1 a gate or check breached, 2 undecided,
    invalid run or error. Writes summary.json, junit.xml and report.html again."""
    _require_run_dir(run_dir)
    raise typer.Exit(_report(run_dir, _optional_scenario(scenario)))


def _compare(baseline_dir: Path, run_dir: Path, judged_by: Scenario | None) -> int:
    """Compare `run_dir` with `baseline_dir`, store the comparison in `run_dir`, print it."""
    from harness import compare
    from harness.checks import exit_code, generator, invalid, machine
    from harness.rundata import load_run
    from reports.terminal import print_comparison

    base, cand = load_run(baseline_dir), load_run(run_dir)
    tolerances = judged_by.baseline.model_dump(mode="json") if judged_by else cand.manifest.baseline_tolerances
    if base.manifest.scenario != cand.manifest.scenario:
        _say(f"note: comparing runs of different scenarios ({base.manifest.scenario} → "
             f"{cand.manifest.scenario}); figures only one has are listed, not judged")
    unusable = [f"{which} run is invalid (its load generator or the machine could not measure it)"
                for which, r in (("the baseline", base), ("this", cand))
                if invalid([generator.check(r), machine.check(r)])]
    deltas = compare.compare(base, cand, tolerances)
    verdict = compare.result(deltas, base.manifest.run_id or baseline_dir.name,
                             invalid_run="; ".join(unusable) or None)
    print_comparison(compare.save(run_dir, base, deltas, verdict, tolerances), console)
    return exit_code([verdict])


@app.command("compare")
def compare_runs(
    baseline: Annotated[Path, typer.Argument(help="The baseline run directory (A).")],
    run_dir: Annotated[Path, typer.Argument(help="The run directory to judge against it (B).")],
    scenario: Annotated[str | None, typer.Option(
        help="Take the tolerances from this scenario's `baseline:` instead of run B's.")] = None,
) -> None:
    """Per-figure deltas of run B against run A, each judged against its tolerance: exit 0 none
    regressed, 1 a figure regressed, 2 error or an invalid run. B's report shows the comparison."""
    from harness.rundata import load_run
    from harness.verdict import judge_run
    from reports import write_reports

    _require_run_dir(baseline)
    _require_run_dir(run_dir)
    code = _compare(baseline, run_dir, _optional_scenario(scenario))
    run = load_run(run_dir)
    console.print(f"report: {write_reports(run_dir, run, judge_run(run))}")
    raise typer.Exit(code)


@app.command()
def generator(
    master: Annotated[str, typer.Option(help="The run's Locust master, HOST:PORT (`feedlab run` prints it).")],
    allow_host: Annotated[list[str], typer.Option(
        help="Allow load to this host (repeatable); by default a generator sends load to loopback only.")
                          ] = [],  # noqa: B006
) -> None:
    """Join a run's load from this host: a Locust worker of `feedlab run --generators N`. It
    takes its part of the plan from the master, and sends its records there."""
    from harness.load import GENERATOR_ARGV

    host, _, port = master.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(f"--master {master!r}: expected HOST:PORT")
    env = {**os.environ, "FEEDLAB_ROLE": "generator", "FEEDLAB_ALLOW_HOSTS": ",".join(allow_host)}
    argv = [sys.executable, *GENERATOR_ARGV, "--master-host", host.strip("[]"), "--master-port", port]
    os.execve(sys.executable, argv, env)   # Locust itself from here on: its signals, its exit code


@app.command("scenarios")
def list_scenarios() -> None:
    """List the built-in scenarios (workloads/scenarios/*.yaml)."""
    from workloads.scenario import ScenarioError, builtin, load_file

    table = Table("name", "workload", "load", "faults", "description", box=None)
    for name, path in builtin().items():
        try:
            sc = load_file(path)
        except ScenarioError as exc:
            table.add_row(name, "[red]invalid[/]", "", "", str(exc).splitlines()[0])
            continue
        table.add_row(name, sc.workload.kind.value, f"{sc.workload.duration:.0f} s", str(len(sc.faults)),
                      sc.description)
    console.print(table)


@app.command("verify")
def verify_design(
    only: Annotated[list[str], typer.Option(
        help="Run only this experiment (repeatable, or several with commas); see --list.")] = [],  # noqa: B006
    defect: Annotated[list[str], typer.Option(
        help=f"Turn on a target defect in every experiment: NAME[=SHARE|=SECONDS]; one of {', '.join(DEFECTS)}.")] = [],  # noqa: B006
    list_only: Annotated[bool, typer.Option("--list", help="List the experiments and exit.")] = False,
    base_port: BasePort = 19000,
    runtime: RuntimeOption = RuntimeKind.local,
    out: Annotated[Path | None, typer.Option(help="Where to write the runs (default: runs/<time>-verify).")] = None,
) -> None:
    """Run every failure mode of the design (§10) as an experiment; print the table with each
    row's verdict and evidence. Exit 0 only when every row tried passes."""
    from harness.verify import chosen_experiments, exit_code, run_experiment, table_order, waiting_rows, write_verify
    from workloads.scenario import ScenarioError, experiments

    known = experiments()
    only = [n.strip() for names in only for n in names.split(",") if n.strip()]
    unknown = [n for n in only if n not in known]
    if unknown:
        raise _fail(f"--only {', '.join(unknown)}: no such experiment (one of {', '.join(known)})")
    try:
        chosen = chosen_experiments(only, _parse_defects(defect))
    except ScenarioError as exc:
        raise _fail(str(exc)) from None
    if list_only:
        table = Table("experiment", "§10 row", "faults", "judged by", box=None)
        for sc in chosen:
            assert sc.experiment is not None
            table.add_row(sc.name, sc.experiment.row, ", ".join(f"{f.action}@{f.target}" for f in sc.faults) or "-",
                          ", ".join(sc.experiment.judged_by))
        console.print(table, markup=False)
        return
    out_dir = out or runs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-verify"
    if out_dir.exists() and any(out_dir.iterdir()):
        raise _fail(f"verify directory {out_dir} exists and is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    _say(f"verify: {len(chosen)} experiment(s) into {out_dir}")
    rows, interrupted = [], False
    try:
        for i, sc in enumerate(chosen, start=1):
            _say(f"verify: {i}/{len(chosen)} {sc.name}: {sc.description}")
            row = run_experiment(sc, out_dir / sc.name, base_port, _say, lambda d: _judge(d)[0], runtime.value)
            _say(f"verify: {sc.name}: {row.verdict.upper()} in {row.seconds:.0f} s")
            rows.append(row)
    except KeyboardInterrupt:
        err.print("[bold red]error:[/] interrupted: faults healed, stack stopped; the table shows the rows run")
        interrupted = True
    rows = sorted(rows + ([] if only else waiting_rows()), key=lambda r: table_order(r.row))
    path = write_verify(out_dir, rows, _parse_defects(defect))
    table = Table("§10 row", "experiment", "verdict", "evidence", box=None, show_lines=True)
    colour = {"pass": "green", "fail": "red", "waits": "dim"}
    for r in rows:
        table.add_row(escape(r.row), r.experiment, f"[{colour.get(r.verdict, 'yellow')}]{r.verdict.upper()}[/]",
                      escape("\n".join(r.evidence)))
    console.print(table)
    console.print(f"verify: {path}")
    raise typer.Exit(2 if interrupted else exit_code(rows))


@app.command("faults")
def list_faults() -> None:
    """List the fault catalogue: each fault, what it can target, its parameters and its heal."""
    from chaos.catalogue import KINDS

    for k in KINDS:
        console.print(f"[bold]{k.name}[/]  [dim]({k.family})[/]  {escape(k.summary)}")
        console.print(f"    targets: {escape(k.targets.help)}")
        for p in k.params:
            console.print(f"    param    {escape(p.describe())}")
        console.print(f"    heal:    {escape(k.heal)}")
    console.print("\nA scenario schedules them as `faults: [{action, target, at, heal_after, every, seed, params}]`: "
                  "`every` repeats a fault while the load runs, `seed` makes the gaps random (averaging `every`); "
                  "several faults may overlap, each on its own clock.", markup=False)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Scenario files (YAML).")]) -> None:
    """Validate scenario files without starting anything; every problem is named with its field."""
    from workloads.scenario import ScenarioError, load_file

    bad = 0
    for path in files:
        try:
            sc = load_file(path)
        except ScenarioError as exc:
            bad += 1
            for line in str(exc).splitlines():
                err.print(f"[red]invalid:[/] {escape(line)}")
            continue
        faults = ", ".join(f"{f.action}@{f.target}" for f in sc.faults) or "no faults"
        console.print(f"{escape(str(path))}: valid: {escape(sc.name)}, {sc.workload.kind.value}, "
                      f"{sc.workload.duration:.0f} s of load, {len(sc.gates)} gate(s), {escape(faults)}")
    if bad:
        raise typer.Exit(2)


@app.command()
def images(
    rebuild: Annotated[bool, typer.Option(
        help="Build every image again, even those whose inputs did not change.")] = False,
) -> None:
    """Build the docker runtime's images on this machine (a Debian base made with debootstrap, then
    one image per component); reuses each image while its inputs are unchanged."""
    from harness.runtime.docker_engine import EngineError, connect
    from harness.runtime.images import ImageError, Images, describe

    t0 = time.monotonic()
    try:
        imgs = Images(connect(_say), progress=_say)
        built = imgs.ensure(rebuild=rebuild)
    except (EngineError, ImageError) as exc:
        raise _fail(str(exc)) from None
    table = Table("image", "tag", "this time")
    for b in built:
        table.add_row(b.name, b.tag, f"built in {b.seconds:.1f} s" if b.built else "reused")
    console.print(table)
    _say(f"{describe(built)}; {time.monotonic() - t0:.1f} s in all")


@app.command()
def compose(
    base_port: BasePort = 19000,
    out: Annotated[Path, typer.Option(help="The folder to write the compose project to.")] = REPO / "compose",
    check: Annotated[bool, typer.Option(
        help="Write nothing; exit 1 when the files in --out differ from what would be written.")] = False,
) -> None:
    """Write the reference stack as a compose project (docker-compose.yml and the configuration it
    mounts), generated from the same components as `feedlab up`; `feedlab images` builds its images."""
    from harness.compose import COMPOSE_FILE, render

    topo = Topology(base_port=base_port)
    try:
        project = render(topo, out)
    except ComponentError as exc:
        raise _fail(str(exc)) from None
    if check:
        stale = project.differences(out)
        if stale:
            _say(f"{out}: {len(stale)} file(s) differ from the generated project: {', '.join(stale)} "
                 f"(feedlab compose --base-port {base_port} --out {out})")
            raise typer.Exit(1)
        _say(f"{out}: up to date ({len(project.files)} files)")
        return
    written = project.write(out)
    _say(f"wrote {len(written)} files to {out}; then: feedlab images && docker compose -f {out / COMPOSE_FILE} "
         f"up -d (nginx on 127.0.0.1:{topo.nginx_port})")


# --- the long-lived stack: up / status / down / logs / kill / pause / resume / restart


def _stack_dir(base_port: int) -> Path:
    return runs_dir() / f"stack-{base_port}"


@app.command()
def up(base_port: BasePort = 19000,
       defect: Annotated[list[str], typer.Option(
           help=f"Turn on a target defect: NAME[=SHARE|=SECONDS]; one of {', '.join(DEFECTS)}.")] = [],  # noqa: B006
       runtime: RuntimeOption = RuntimeKind.local,
       ) -> None:
    """Start the reference stack in the background (owned by a supervisor process)."""
    from harness.runtime.local import check_ports_free
    from harness.supervisor import TOKEN_SECRET, read_state, wait_ready

    defects = _parse_defects(defect)
    stack_dir = _stack_dir(base_port)
    state = read_state(stack_dir)
    if state and state.get("status") in ("ready", "starting") and pid_alive(state.get("pid")):
        raise _fail(f"a stack is already running from {stack_dir} (pid {state['pid']}); `feedlab down` first")
    try:
        if runtime is RuntimeKind.docker:
            _remove_orphan_containers(base_port)
        check_ports_free(Topology(base_port=base_port).all_ports())
    except ComponentError as exc:
        raise _fail(str(exc)) from None
    stack_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / "supervisor.json").unlink(missing_ok=True)
    # Each `up` is a new stack: a stopped one's data (Redis cluster membership, Cassandra tables)
    # would make the new cluster refuse to form.
    shutil.rmtree(stack_dir / "data", ignore_errors=True)
    with open(stack_dir / "supervisor.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness.supervisor", "--stack-dir", str(stack_dir),
                                 "--base-port", str(base_port), "--runtime", runtime.value,
                                 *(f"--env={name}={value}" for name, value in defects.items())],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    # The docker runtime's first `up` also builds its images (about 2 minutes here).
    state = wait_ready(stack_dir, proc.pid, 180 if runtime is RuntimeKind.local else 900, _say)
    if state["status"] != "ready":
        tail = state.get("tail") or ""
        raise _fail(f"{state.get('error')}" + (f"\n--- last lines of its log ---\n{tail}" if tail else ""))
    _say(f"stack ready ({runtime.value}) in {time.monotonic() - t0:.1f} s; "
         f"API at {Topology(base_port=base_port).api_url}"
         + (f"; defects on: {', '.join(defect)}" if defect else ""))
    _say(f"its token secret (HS256), for `feedlab run --target`: --token-secret-file {stack_dir / TOKEN_SECRET}")


def _remove_orphan_containers(base_port: int) -> None:
    """Containers a dead owner left on these ports (its reaper died too) would hold them."""
    from harness.runtime.docker_engine import EngineError, connect
    from harness.runtime.docker_runtime import remove_orphans

    try:
        gone = remove_orphans(connect(_say), str(base_port))
    except EngineError as exc:
        raise _fail(str(exc)) from None
    if gone:
        _say(f"removed {gone} containers a dead stack left on these ports")


def _ask(base_port: int, op: str, name: str | None = None) -> object:
    from harness.supervisor import SupervisorError, request

    try:
        return request(_stack_dir(base_port), op, name)
    except SupervisorError as exc:
        raise _fail(str(exc)) from None


@app.command()
def status(base_port: BasePort = 19000) -> None:
    """Show every component of the running stack."""
    rows = _ask(base_port, "status")
    table = Table("name", "role", "pid", "state")
    for r in rows:  # type: ignore[attr-defined]
        colour = "green" if r["state"] == "running" else "yellow" if r["state"] == "paused" else "red"
        table.add_row(r["name"], r["role"], str(r["pid"] or "-"), f"[{colour}]{r['state']}[/]")
    console.print(table)


@app.command()
def down(base_port: BasePort = 19000) -> None:
    """Stop the running stack (every process it started)."""
    from harness.supervisor import read_state

    stack_dir = _stack_dir(base_port)
    state = read_state(stack_dir)
    if not state or not pid_alive(state.get("pid")):
        _say("no stack is running")
        return
    os.kill(int(state["pid"]), signal.SIGTERM)
    for _ in range(240):
        if not pid_alive(state["pid"]):
            _say("stack stopped")
            return
        time.sleep(0.25)
    raise _fail(f"supervisor {state['pid']} did not stop within 60 s")


@app.command()
def logs(name: str, lines: Annotated[int, typer.Option("-n", help="How many lines.")] = 40,
         base_port: BasePort = 19000) -> None:
    """Print the tail of a component's log."""
    path = _stack_dir(base_port) / "logs" / f"{name}.log"
    if not path.exists():
        known = sorted(p.stem for p in (_stack_dir(base_port) / "logs").glob("*.log"))
        raise _fail(f"no log for {name!r}; known: {', '.join(known) or 'none (is a stack up?)'}")
    console.print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]), markup=False)


def _control(op: str) -> None:
    def command(name: Annotated[str, typer.Argument(help="Component name, e.g. redis-2, worker-1, api-2.")],
                base_port: BasePort = 19000) -> None:
        _say(str(_ask(base_port, op, name)))
    command.__doc__ = f"{op.capitalize()} one component of the running stack, by name."
    app.command(op)(command)


for _op in ("kill", "pause", "resume", "restart"):
    _control(_op)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
