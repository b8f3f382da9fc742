"""Where the JDK 17 and the Maven-fetched jars are (installed by bin/setup)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.paths import cache_dir
from harness.runtime.process import ComponentError

_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")

# The brokers' JIT: C1 only, no C2. A campaign runs on a stack a minute or two old, and C2 spends
# those minutes compiling: over the default campaign's load, Cassandra's C2 compiler thread used
# more of a core than its request threads, and the machine was 71-86 % busy. With C1 alone,
# Cassandra used 291-316 ms of CPU a second against 465-569, Kafka 101-113 against 166-223, the
# machine 63-69 % busy, and the feed p99 was 65-72 ms against 85-271 (3 runs each, alternated;
# README's Performance table). C1's code is slower than C2's would be once warm; the campaigns
# here end before that pays.
BROKER_JIT = ["-XX:TieredStopAtLevel=1"]


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

