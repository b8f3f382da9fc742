"""Removes a docker runtime's containers when the process that owns them ends without doing it
(a crash, SIGKILL): containers, unlike child processes, do not die with their parent.

Started by DockerRuntime.up() in a session of its own, it blocks on the read end of a pipe
whose write end only the owner holds. The kernel closes that end when the owner ends, however
it ends, so the read returns end-of-file; a pid that could be reused or a zombie that still
answers signals plays no part. It then removes every container with the owner's label (trying
again while the engine does not answer) and exits. After the owner's own `down()` it finds
nothing left.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from docker.errors import DockerException

from harness.runtime.docker_engine import EngineError, connect
from harness.runtime.docker_runtime import remove_containers

ATTEMPTS = 10


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watch-fd", type=int, required=True, help="the read end of the owner's pipe")
    ap.add_argument("--label", required=True, help="KEY=VALUE: the owner's containers")
    args = ap.parse_args()
    key, _, value = args.label.partition("=")
    while os.read(args.watch_fd, 4096):
        pass
    for attempt in range(1, ATTEMPTS + 1):
        try:
            n = remove_containers(connect(start=False), {key: value})
            print(f"{time.ctime()}: the owner ended: removed {n} containers labelled {args.label}", flush=True)
            sys.exit(0)
        except (DockerException, EngineError) as exc:
            print(f"{time.ctime()}: attempt {attempt}: {exc}", flush=True)
            time.sleep(1)
    sys.exit(1)


if __name__ == "__main__":
    main()
