"""Aiming feedlab at a service it did not start: where load may go (loopback, or a host the user
named), the token sources, and the faults such a run refuses. Nothing here sends a request: a
refused target is refused before any connection."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chaos.catalogue import EXTERNAL_LINK, runtime_problems
from harness.cli import app
from harness.safety import UnsafeTarget, check_target
from harness.tokens import SharedSecret, TokenCommand, TokenError
from targets.feed.auth import user_from_header

pytestmark = pytest.mark.unit


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str) -> list[str]:
        return table.get(host, [host])
    return resolve


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://127.0.0.2:80", "http://[::1]:9000",
                                 "http://localhost:8080/"])
def test_loopback_targets_are_accepted_and_pinned_to_the_address_checked(url: str) -> None:
    t = check_target(url, resolve=resolver({"localhost": ["::1", "127.0.0.1"]}))
    assert t.loopback
    assert t.port in (8080, 80, 9000)
    assert t.host in ("127.0.0.1", "127.0.0.2", "::1") and t.given == url   # never the name again
    assert t.url == f"http://{t.netloc}"


def test_a_name_is_used_as_the_address_it_resolved_to_when_checked() -> None:
    t = check_target("http://Feeds.Local.:8080", resolve=resolver({"feeds.local": ["127.0.0.9"]}))
    assert (t.url, t.netloc) == ("http://127.0.0.9:8080", "127.0.0.9:8080")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1"])
def test_an_address_not_written_in_full_is_refused(host: str) -> None:
    with pytest.raises(UnsafeTarget, match="write the address in full"):
        check_target(f"http://{host}:8080")


@pytest.mark.parametrize("url, resolves", [
    ("http://192.0.2.1:8080", []),                     # an address of another machine
    ("http://169.254.169.254/", []),                   # a cloud's metadata service
    ("http://0.0.0.0:8080", []),                       # "any address" is not loopback
    ("http://feeds.example.com:8080", ["93.184.216.34"]),
    ("http://sneaky.example:80", ["127.0.0.1", "10.0.0.7"]),   # loopback and not: not loopback
])
def test_other_hosts_are_refused_naming_the_opt_in(url: str, resolves: list[str]) -> None:
    host = url.split("//")[1].split(":")[0].rstrip("/")
    with pytest.raises(UnsafeTarget, match=rf"not this machine's loopback.*--allow-host {host}"):
        check_target(url, resolve=resolver({host: resolves} if resolves else {}))


def test_the_opt_in_covers_the_host_named_and_no_other() -> None:
    dns = resolver({"feeds.example.com": ["93.184.216.34"], "api.feeds.example.com": ["93.184.216.35"]})
    t = check_target("http://Feeds.Example.com:8080", ["feeds.example.com"], resolve=dns)
    assert (t.host, t.port, t.loopback) == ("feeds.example.com", 8080, False)
    with pytest.raises(UnsafeTarget, match="--allow-host api.feeds.example.com"):
        check_target("http://api.feeds.example.com:8080", ["feeds.example.com"], resolve=dns)
    with pytest.raises(UnsafeTarget):   # an address is not its name's opt-in
        check_target("http://93.184.216.34:8080", ["feeds.example.com"], resolve=dns)


@pytest.mark.parametrize("url, problem", [
    ("ftp://127.0.0.1/", "scheme must be http or https"),
    ("127.0.0.1:8080", "scheme must be http or https"),
    ("http://:8080", "no host"),
    ("http://u:p@127.0.0.1:8080", "credentials"),
    ("http://127.0.0.1:8080/?x=1", "no query"),
    ("http://127.0.0.1:99999", "not a URL"),
    ("http://127.0.0.1:0", "port 0"),
])
def test_malformed_targets_say_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(UnsafeTarget, match=problem):
        check_target(url)


def test_a_shared_secret_signs_tokens_the_reference_target_accepts() -> None:
    tokens = SharedSecret("s3cret" * 8)
    assert user_from_header("s3cret" * 8, f"Bearer {tokens.token(42)}") == 42
    assert tokens.locust_env() == {"FEEDLAB_TOKEN_SECRET": "s3cret" * 8}
    with pytest.raises(TokenError):
        SharedSecret("")


def test_a_token_command_is_asked_once_per_user_and_its_file_is_private(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    script = tmp_path / "token.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {calls}\necho "tok-$1"\n')
    script.chmod(0o755)
    tokens = TokenCommand(f"{script} {{user}}")
    tokens.prefetch([1, 2, 3])
    assert tokens.token(2) == "tok-2"
    assert sorted(calls.read_text().split()) == ["1", "2", "3"]   # nothing asked twice
    path = Path(tokens.locust_env()["FEEDLAB_TOKENS_FILE"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == '{"1": "tok-1", "2": "tok-2", "3": "tok-3"}'
    tokens.close()
    assert not path.exists()


@pytest.mark.parametrize("command, problem", [
    ("printf tok", "must contain {user}"),
    ("", "empty"),
    ("'unclosed {user}", "closing quotation"),
])
def test_a_token_command_is_checked_before_use(command: str, problem: str) -> None:
    with pytest.raises(TokenError, match=problem):
        TokenCommand(command)


@pytest.mark.parametrize("command, problem", [
    (f"{sys.executable} -c 'import sys; sys.exit(3)' {{user}}", "exited 3"),
    ("printf '' {user}", "printed 0 bytes"),
    ("echo two words {user}", "must print one token"),
    ("/nonexistent/token-maker {user}", "No such file"),
])
def test_a_token_command_that_fails_names_the_user_and_the_command(command: str, problem: str) -> None:
    with pytest.raises(TokenError, match=rf"user 7 .*{problem}"):
        TokenCommand(command).token(7)


def test_only_faults_on_the_generator_s_link_run_against_an_external_target() -> None:
    assert runtime_problems([("latency", EXTERNAL_LINK), ("down", EXTERNAL_LINK)], external=True) == []
    problems = runtime_problems([("kill", "redis-1"), ("latency", "api->redis-2"), ("down", EXTERNAL_LINK),
                                 ("degrade-ranker", "ranker")], external=True)
    assert [p.split(":")[0] for p in problems] == ["faults[0] (kill on redis-1)", "faults[1] (latency on api->redis-2)",
                                                   "faults[3] (degrade-ranker on ranker)"]
    assert runtime_problems([("latency", EXTERNAL_LINK)], external=False) == [
        f"faults[0] (latency on {EXTERNAL_LINK}): {EXTERNAL_LINK} exists only with --target; the reference "
        "stack's front door is generator->nginx"]


def _run(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(app, ["run", *args])
    return out.exit_code, " ".join(out.output.split())


def test_the_cli_refuses_a_remote_target_before_starting_anything(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    run_dir = tmp_path / "run"
    code, said = _run("smoke", "--target", "http://192.0.2.1:8080", "--token-secret-file", str(secret),
                      "--run-dir", str(run_dir))
    assert code == 2
    assert "192.0.2.1 is not this machine's loopback" in said and "--allow-host 192.0.2.1" in said
    assert not run_dir.exists()


def test_the_cli_refuses_process_faults_and_defects_with_a_target(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    code, said = _run("smoke", "--target", "http://127.0.0.1:9", "--token-secret-file", str(secret))
    assert code == 2
    assert "faults[0] (kill-redis-primary on redis-primary-1)" in said and "owns no process" in said
    code, said = _run("smoke", "--target", "http://127.0.0.1:9", "--token-secret-file", str(secret),
                      "--defect", "drop-fanout")
    assert code == 2 and "feedlab up --defect" in said
    code, said = _run("smoke", "--target", "http://127.0.0.1:9")
    assert code == 2 and "needs a token source" in said
    code, said = _run("smoke", "--token-command", "echo {user}")
    assert code == 2 and "goes with --target" in said


def test_a_scenario_s_target_block_is_held_to_the_same_rules(tmp_path: Path) -> None:
    import yaml

    from workloads.scenario import SCENARIO_DIR

    secret = tmp_path / "secret"
    secret.write_text("x\n")
    data = yaml.safe_load((SCENARIO_DIR / "external.yaml").read_text())
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**data, "target": {"url": "http://192.0.2.1:8080",
                                                       "token_secret_file": str(secret)}}))
    code, said = _run(str(path))
    assert code == 2 and "192.0.2.1 is not this machine's loopback" in said
    # a flag overrides its field: here the URL, and the token source stays the file's
    code, said = _run(str(path), "--target", "http://192.0.2.1:8080/api", "--allow-host", "192.0.2.1")
    assert code == 2 and "a path prefix (/api) is not supported" in said
    path.write_text(yaml.safe_dump({**data, "target": {"url": "http://127.0.0.1:9"}}))
    code, said = _run(str(path))
    assert code == 2 and "needs a token source" in said
