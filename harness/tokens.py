"""Where the harness gets a bearer token to act as a user of the target.

- `SharedSecret`: the target's HS256 secret; the harness signs its own tokens (the reference
  target's scheme, targets/feed/auth.py: `sub` is the user id).
- `TokenCommand`: a command the user configures that prints a token for a user id
  (`{user}` in it is replaced by the id), for a service whose tokens the harness cannot sign.
  Each user's token is asked for once and kept for the run; the load generator's processes
  get them in a file only the harness's user can read (`locust_env`), removed at the end.
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from targets.feed.auth import issue_token

COMMAND_TIMEOUT_S = 30.0
USER_FIELD = "{user}"


class TokenError(RuntimeError):
    pass


class TokenSource(Protocol):
    def token(self, user_id: int) -> str: ...

    def locust_env(self) -> dict[str, str]:
        """What the load generator's processes need in their environment to make the same tokens."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class SharedSecret:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise TokenError("the token secret is empty")
        self.secret = secret

    def token(self, user_id: int) -> str:
        return issue_token(self.secret, user_id)

    def locust_env(self) -> dict[str, str]:
        return {"FEEDLAB_TOKEN_SECRET": self.secret}

    def describe(self) -> str:
        return "HS256 tokens signed with the shared secret"

    def close(self) -> None:
        pass


class TokenCommand:
    def __init__(self, command: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise TokenError(f"--token-command {command!r}: {exc}") from None
        if not argv:
            raise TokenError("--token-command is empty")
        if not any(USER_FIELD in a for a in argv):
            raise TokenError(f"--token-command {command!r}: it must contain {USER_FIELD}, where the user id goes")
        self.argv = argv
        self.timeout_s = timeout_s
        self._tokens: dict[int, str] = {}
        self._file: Path | None = None

    def token(self, user_id: int) -> str:
        if user_id not in self._tokens:
            self._tokens[user_id] = self._ask(user_id)
        return self._tokens[user_id]

    def _ask(self, user_id: int) -> str:
        argv = [a.replace(USER_FIELD, str(user_id)) for a in self.argv]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenError(f"token command for user {user_id} ({Path(argv[0]).name}): {exc}") from None
        token = out.stdout.strip()
        if out.returncode != 0 or not token or any(c.isspace() for c in token):
            raise TokenError(f"token command for user {user_id} ({Path(argv[0]).name}) exited {out.returncode} "
                             f"and printed {len(out.stdout)} bytes; it must print one token and exit 0"
                             + (f"; stderr: {out.stderr.strip()[-300:]}" if out.stderr.strip() else ""))
        return token

    def prefetch(self, users: Iterable[int], progress: Callable[[int, int], None] | None = None,
                 workers: int = 8) -> None:
        """Every user's token asked for now, `workers` commands at a time."""
        wanted = [u for u in users if u not in self._tokens]
        with ThreadPoolExecutor(workers) as pool:
            for done, (user, token) in enumerate(zip(wanted, pool.map(self._ask, wanted), strict=True), start=1):
                self._tokens[user] = token
                if progress is not None and (done % 500 == 0 or done == len(wanted)):
                    progress(done, len(wanted))

    def locust_env(self) -> dict[str, str]:
        """The tokens asked for so far (`prefetch` every user first), in a file readable by this
        user only, outside the run directory (which people share); removed by `close`."""
        if self._file is None:
            fd, name = tempfile.mkstemp(prefix="feedlab-tokens-", suffix=".json")
            self._file = Path(name)
            atexit.register(self.close)   # also when the campaign's own clean-up never runs
            with os.fdopen(fd, "w") as f:
                json.dump({str(u): t for u, t in self._tokens.items()}, f)
        return {"FEEDLAB_TOKENS_FILE": str(self._file)}

    def describe(self) -> str:
        """The program only: a command's arguments often carry credentials."""
        return f"tokens from the command {Path(self.argv[0]).name} (its arguments not recorded)"

    def close(self) -> None:
        if self._file is not None:
            self._file.unlink(missing_ok=True)
            self._file = None
