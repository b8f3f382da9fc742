"""Getting a campaign's social graph into the stack fast enough for the large graph.

1. `prepare` (no stack needed): the graph of a spec, generated once and cached under
   .cache/graphs/KEY (graph.json + graph.edges, see workloads/graph.py), and its follow edges
   written once, beside it, as SSTables of feed.follows and feed.followers (and its users, each
   registered: feed.users and feed.handles) by CQLSSTableWriter,
   Cassandra's own bulk-load writer, run from the node's jars (harness/java/GraphSSTables.java).
2. `load` (stack up): `nodetool import` adds those SSTables to the running node, a count per
   table proves it, and every user's timeline is preheated in Redis.

Through CQL the large graph's 88 M rows took about 18 minutes at 81 k rows/s on this machine;
written as SSTables they take about a minute, once, and importing them takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from harness.paths import cache_dir
from harness.runtime import java
from harness.runtime.cassandra import JDK17_FLAGS
from harness.topology import Topology
from records import GRAPH, GRAPH_EDGES
from workloads.graph import Graph, GraphSpec, generate

# Bump when generate() or GraphSSTables.java changes what a spec gives: the cache key.
GENERATOR_VERSION = 3
# When the seeded follows "happened": fixed, so that the cached SSTables of a graph never change.
CREATED_AT_MS = 1_767_225_600_000   # 2026-01-01T00:00:00Z
TABLES = ("follows", "followers", "users", "handles")
FOLLOW_SETS_PREHEAT_EDGES = 1_000_000   # follow edges up to which seeding caches every follow set (the small graph)
# Every seeded user is registered with this handle (harness/java/GraphSSTables.java writes it).
HANDLE_PREFIX = "user"
WRITER = Path(__file__).parent / "java" / "GraphSSTables.java"
TOOLS_LOGBACK = Path(__file__).parent / "java" / "tools-logback.xml"
COMPLETE = "complete"
# A cached graph no campaign has used for this long is removed (the large one is about 670 MB,
# and each spec, --users or --seed adds one). Runs keep theirs: they hold hard links or copies.
LAST_USED = "last-used"
UNUSED_DAYS = 14

Progress = Callable[[str], None]


class SeedingError(RuntimeError):
    pass


def handle_of(user_id: int) -> str:
    """The handle a seeded user is registered with."""
    return f"{HANDLE_PREFIX}{user_id}"


def _quiet(_: str) -> None:
    pass


def graph_folder(spec: GraphSpec) -> Path:
    key = json.dumps({**asdict(spec), "generator": GENERATOR_VERSION}, sort_keys=True)
    return cache_dir() / "graphs" / hashlib.sha256(key.encode()).hexdigest()[:16]


def prepare(spec: GraphSpec, progress: Progress = _quiet, *, sstables: bool = True) -> tuple[Graph, Path]:
    """The graph of `spec` (mapped from the cache) and its cache folder, holding its SSTables
    (unless `sstables` is False: a target seeded through its API needs none)."""
    folder = graph_folder(spec)
    prune(folder.parent, keep=folder)
    graph = _cached_graph(folder)
    if graph is None:
        started = time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)
        generate(spec, progress).write(folder)
        graph = Graph.read(folder)   # mapped: the generated arrays' memory goes back
        progress(f"generated {graph.edge_count:,} follows in {time.monotonic() - started:.1f} s "
                 f"(cached in {folder})")
    if sstables and not (folder / "sstables" / COMPLETE).is_file():
        started = time.monotonic()
        write_sstables(folder, progress)
        rows = 2 * graph.edge_count + 2 * len(graph.user_ids)
        progress(f"wrote {rows:,} rows as SSTables in {time.monotonic() - started:.1f} s (cached)")
    (folder / LAST_USED).touch()
    return graph, folder


def prune(graphs: Path, keep: Path, unused_days: float = UNUSED_DAYS) -> list[Path]:
    """Remove the cached graphs (other than `keep`) unused for `unused_days`; return those removed."""
    cutoff = time.time() - unused_days * 86400
    removed = []
    for folder in graphs.iterdir() if graphs.is_dir() else ():
        if folder == keep or not folder.is_dir():
            continue
        marker = folder / LAST_USED
        used = (marker if marker.exists() else folder).stat().st_mtime
        if used < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _cached_graph(folder: Path) -> Graph | None:
    if not (folder / GRAPH).is_file():
        return None
    try:
        return Graph.read(folder)
    except (OSError, ValueError, KeyError):   # a damaged cache entry is made again
        shutil.rmtree(folder, ignore_errors=True)
        return None


def copy_into(folder: Path, run_dir: Path) -> None:
    """graph.json and graph.edges into a run directory (hard links when the file system allows:
    the cache replaces files, never rewrites them, so a linked run keeps its graph)."""
    for name in (GRAPH, GRAPH_EDGES):
        target = run_dir / name
        target.unlink(missing_ok=True)
        try:
            os.link(folder / name, target)
        except OSError:
            shutil.copyfile(folder / name, target)


def _java(*args: str, heap: str) -> list[str]:
    return [java.java17(), f"-Xmx{heap}", *JDK17_FLAGS, f"-Dlogback.configurationFile={TOOLS_LOGBACK}",
            "-cp", f"{java.jars('cassandra')}/*", *args]


def write_sstables(folder: Path, progress: Progress = _quiet) -> None:
    """CQLSSTableWriter over folder/graph.edges, into folder/sstables (complete, or absent)."""
    out = folder / "sstables"
    work = folder / f"sstables.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    argv = _java(str(WRITER), str(folder / GRAPH_EDGES), str(work), str(CREATED_AT_MS), heap="1536m")
    # stderr to a file: a pipe read only at the end could fill up and stall the writer.
    with tempfile.TemporaryFile("w+") as errors, \
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress(f"SSTables: {line.strip()}")
        proc.wait()
        errors.seek(0)
        if proc.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            raise SeedingError(f"the SSTable writer failed (exit {proc.returncode}):\n{errors.read()[-3000:]}")
    (work / COMPLETE).write_text(f"{CREATED_AT_MS}\n")
    if (out / COMPLETE).is_file():   # another campaign wrote the same graph's SSTables meanwhile
        shutil.rmtree(work, ignore_errors=True)
        return
    shutil.rmtree(out, ignore_errors=True)   # what an interrupted writer left
    work.rename(out)


def load(graph: Graph, folder: Path, topo: Topology, progress: Progress = _quiet) -> None:
    """Import the graph's follow edges into the running node, then preheat every timeline.

    A real platform's users arrive with warm timelines; without the preheat the first read of
    every user would take the store fan-in path and the campaign would measure a cold start.
    Their follow sets are warm too, up to FOLLOW_SETS_PREHEAT_EDGES (the small graph): cold,
    every new reader's first page and every author's first fan-out read them from Cassandra:
    506 reads in roughly the first 12 s of an experiment on the small graph, when its feed p99
    was at its worst (327 ms over seconds 5-10 of one run, 30-50 ms afterwards).
    """
    from targets.feed.cache import preheat
    from targets.feed.follow_sets import preheat as preheat_follow_sets

    import_edges(graph, folder, topo)
    register_pull_tier(graph, f"{topo.host}:{topo.cassandra_proxy_port}")
    progress("follow edges imported; preheating timelines")
    preheat(topo.redis_proxy_addresses(), list(graph.user_ids))
    if graph.edge_count <= FOLLOW_SETS_PREHEAT_EDGES:
        progress("preheating follow sets")
        preheat_follow_sets(topo.redis_proxy_addresses(), {a: graph.followers_of(a) for a in graph.authors},
                            users=graph.user_ids)


def register_pull_tier(graph: Graph, cassandra_address: str) -> None:
    """The seeded accounts at or above the pull threshold are in the pull tier from the start:
    the registry says so before their first tweet (the workers otherwise register an account
    when they first handle one of its tweets, so behind a fan-out backlog a seeded celebrity's
    first tweets were merged into nobody's feed)."""
    from targets.feed.store import connect

    cluster, session = connect(cassandra_address, timeout=30, request_timeout=30)
    try:
        for author in graph.celebrities:
            session.execute("INSERT INTO feed.pull_tier (bucket, author_id) VALUES (0, %s)", (author,), timeout=30)
    finally:
        cluster.shutdown()


def import_edges(graph: Graph, folder: Path, topo: Topology) -> None:
    """`nodetool import` the graph's SSTables (from `prepare`) and check that they arrived."""
    for table in TABLES:
        # --copy-data leaves the cached SSTables in place for the next campaign.
        argv = _java("org.apache.cassandra.tools.NodeTool", "-h", topo.host, "-p", str(topo.cassandra_jmx_port),
                     "import", "--copy-data", "feed", table, str(folder / "sstables" / "feed" / table), heap="256m")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SeedingError(f"nodetool import feed.{table} failed (exit {done.returncode}):\n"
                               f"{(done.stdout + done.stderr)[-3000:]}")
    _verify(graph, f"{topo.host}:{topo.cassandra_proxy_port}")


def _verify(graph: Graph, cassandra_address: str) -> None:
    """nodetool says nothing when it finds no SSTable to import: count one partition of each
    follow table (the most followed account, and one of its followers) against the graph, and
    look up the last user's profile and handle."""
    from targets.feed.store import connect

    cluster, session = connect(cassandra_address, timeout=30, request_timeout=30)
    try:
        if graph.edge_count:
            author = max(graph.authors, key=graph.follower_count)
            follower = graph.followers_of(author)[0]
            followees = sum(1 for a in graph.authors if graph.follows(follower, a))
            got = [session.execute(q, (key,), timeout=30).one()[0] for q, key in (
                ("SELECT COUNT(*) FROM feed.followers WHERE followee_id = %s", author),
                ("SELECT COUNT(*) FROM feed.follows WHERE follower_id = %s", follower))]
            if got != [graph.follower_count(author), followees]:
                raise SeedingError(f"after nodetool import, user {author} has {got[0]} followers (graph: "
                                   f"{graph.follower_count(author)}) and user {follower} follows {got[1]} "
                                   f"(graph: {followees})")
        last = graph.user_ids[-1]
        profile = session.execute("SELECT handle FROM feed.users WHERE user_id = %s", (last,), timeout=30).one()
        holder = session.execute("SELECT user_id FROM feed.handles WHERE handle_key = %s",
                                 (handle_of(last),), timeout=30).one()
    finally:
        cluster.shutdown()
    if profile is None or profile.handle != handle_of(last) or holder is None or holder.user_id != last:
        raise SeedingError(f"after nodetool import, user {last} is not registered as @{handle_of(last)} "
                           f"(profile: {profile}, handle held by: {holder})")
