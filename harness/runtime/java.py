"""Where the JDK 17 and the Maven-fetched jars are (installed by bin/setup)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.paths import cache_dir
from harness.runtime.process import ComponentError

_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64/bin/java")


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

