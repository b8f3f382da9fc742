"""The detached owner of a stack started with `feedlab up`.

Components die with their owner (PR_SET_PDEATHSIG), so a stack that outlives the `up` command
needs an owner that stays: this process. It brings the stack up, records its state in
`<stack dir>/supervisor.json`, and answers the CLI (`status`, `kill`, `pause`, `resume`,
`restart`, `down`) on a Unix socket guarded by a random key. SIGTERM or `down` stop it all.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import asdict
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from harness.runtime.local import LocalRuntime
from harness.runtime.process import pid_alive
from harness.topology import Topology
from records import write_json

STATE = "supervisor.json"


class SupervisorError(RuntimeError):
    pass


def read_state(stack_dir: Path) -> dict[str, Any] | None:
    import json

    path = stack_dir / STATE
    if not path.exists():
        return None
    return dict(json.loads(path.read_text()))


def request(stack_dir: Path, op: str, name: str | None = None, timeout: float = 120) -> Any:
    state = read_state(stack_dir)
    if not state or state.get("status") != "ready":
        raise SupervisorError(f"no stack is running from {stack_dir} (`feedlab up` starts one)")
    if not pid_alive(state["pid"]):
        raise SupervisorError(f"the stack's supervisor (pid {state['pid']}) is gone; `feedlab up` again")
    with Client(state["socket"], family="AF_UNIX", authkey=bytes.fromhex(state["key"])) as conn:
        conn.send({"op": op, "name": name})
        if not conn.poll(timeout):
            raise SupervisorError(f"no answer to {op} within {timeout:.0f} s")
        reply = conn.recv()
    if not reply.get("ok"):
        raise SupervisorError(reply.get("error", "failed"))
    return reply.get("result")


TOKEN_SECRET = "token-secret"   # the stack's HS256 secret, for `feedlab run --target ... --token-secret-file`


def serve(stack_dir: Path, topo: Topology, target_env: dict[str, str] | None = None,
          runtime_kind: str = "local") -> int:
    stack_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    sock = stack_dir / "control.sock"
    sock.unlink(missing_ok=True)
    state: dict[str, Any] = {"pid": os.getpid(), "socket": str(sock), "key": key.hex(), "status": "starting",
                             "runtime": runtime_kind,
                             "base_port": topo.base_port, "progress": [], "token_secret": secrets.token_hex(32)}

    def save() -> None:
        write_json(stack_dir / STATE, state)
        os.chmod(stack_dir / STATE, 0o600)

    def progress(msg: str) -> None:
        state["progress"].append(msg)
        print(msg, flush=True)
        save()

    save()
    secret_file = stack_dir / TOKEN_SECRET
    secret_file.unlink(missing_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(state["token_secret"] + "\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        runtime_class = LocalRuntime
        if runtime_kind == "docker":
            from harness.runtime.docker_runtime import DockerRuntime

            runtime_class = DockerRuntime
        runtime = runtime_class(topo=topo, stack_dir=stack_dir,
                                target_env={**(target_env or {}), "FEED_TOKEN_SECRET": state["token_secret"]},
                                progress=progress)
        runtime.up()
    except Exception as exc:  # noqa: BLE001 - reported to the waiting `up` through the state file
        state.update(status="failed", error=str(exc), tail=getattr(exc, "tail", ""))
        save()
        return 2
    state["status"] = "ready"
    save()
    listener = Listener(str(sock), family="AF_UNIX", authkey=key)
    threading.Thread(target=_accept_loop, args=(listener, runtime, stop), daemon=True).start()
    while not stop.wait(0.5):
        pass
    runtime.down()
    state["status"] = "stopped"
    save()
    listener.close()
    return 0


def _accept_loop(listener: Listener, runtime: LocalRuntime, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn = listener.accept()
        except OSError:
            return
        with conn:
            try:
                msg = conn.recv()
                conn.send({"ok": True, "result": _handle(msg, runtime, stop)})
            except Exception as exc:  # noqa: BLE001 - the error goes back to the CLI
                try:
                    conn.send({"ok": False, "error": str(exc)})
                except OSError:
                    pass


def _handle(msg: dict[str, Any], runtime: LocalRuntime, stop: threading.Event) -> Any:
    op, name = msg.get("op"), msg.get("name")
    if op == "status":
        return [asdict(s) for s in runtime.status()]
    if op == "down":
        stop.set()
        return "stopping"
    if op in ("kill", "pause", "resume", "restart") and name:
        getattr(runtime, op)(name)
        return f"{op} {name}: done"
    raise ValueError(f"unknown request {op!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack-dir", type=Path, required=True)
    ap.add_argument("--base-port", type=int, default=19000)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the target (a defect switch)")
    ap.add_argument("--runtime", choices=("local", "docker"), default="local")
    args = ap.parse_args()
    target_env = dict(e.split("=", 1) for e in args.env)
    sys.exit(serve(args.stack_dir, Topology(base_port=args.base_port), target_env, args.runtime))


def wait_ready(stack_dir: Path, pid: int, deadline_s: float, say: Any) -> dict[str, Any]:
    """Follow a starting supervisor until ready or failed; relays its progress lines."""
    shown = 0
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        state = read_state(stack_dir)
        if state and state.get("pid") == pid:
            for line in state["progress"][shown:]:
                say(line)
            shown = len(state["progress"])
            if state["status"] in ("ready", "failed"):
                return state
        if not pid_alive(pid):
            return {"status": "failed", "error": f"supervisor exited; see {stack_dir / 'supervisor.log'}"}
        time.sleep(0.3)
    return {"status": "failed", "error": f"not ready within {deadline_s:.0f} s"}


if __name__ == "__main__":
    main()
