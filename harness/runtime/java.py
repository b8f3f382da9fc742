"""Where the JDK 17 and the Maven-fetched jars are (installed by bin/setup), and the JIT the
brokers run with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.paths import cache_dir
from harness.runtime.process import ComponentError

_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")

# The brokers' JIT: C1 only, no C2. A campaign runs on a stack a minute or two old, and C2 spends
# those minutes compiling: over the default campaign's load, JFR put Cassandra's C2 compiler
# thread above all its request threads together, and Kafka's likewise. On 2026-12-06 (the default
# campaign with 60 s of load, 3 runs each way, alternated, on the local runtime), with C1 alone
# Cassandra used 291-316 ms of CPU a second against 465-569, Kafka 101-113 against 166-223, the
# machine was 63-69 % busy against 71-86, and the feed p99 was 65-72 ms against 85-271 (README's
# Performance table has the docker runtime's too). C1's code is slower than C2's once warm: a
# campaign of a few minutes ends before that pays; longer runs (a compose stack left up) were not
# measured. Without tiering the JVM reserves a 48 MB code cache, not 240; C1 fills more of it
# than C2 would, so the default is kept (reserved, not used, memory).
BROKER_JIT = ["-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m"]


def java17() -> str:
    if _JDK17.exists():
        return str(_JDK17)
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin/java").exists():
        return str(Path(home) / "bin/java")
    found = shutil.which("java")
    if found:
        return found
    raise ComponentError("java", "no JDK 17 found; run bin/setup")


def jars(name: str) -> Path:
    """The folder of runtime jars for `name` ("cassandra", "kafka", "jmx")."""
    folder = cache_dir() / "jars" / name
    if not folder.is_dir() or not any(folder.iterdir()):
        raise ComponentError(name, f"jars missing in {folder}; run bin/setup")
    return folder


def jar(name: str, prefix: str) -> Path:
    for path in sorted(jars(name).glob(f"{prefix}*.jar")):
        return path
    raise ComponentError(name, f"no {prefix}*.jar in {jars(name)}; run bin/setup")

