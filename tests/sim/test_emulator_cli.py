"""``turnstiled-sim``: one line per emulator, faults from the command line, a clean stop."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing, suppress
from pathlib import Path

import httpx
import pytest

from turnstiled.sim.__main__ import main

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request
SCRIPT = Path(sys.executable).parent / "turnstiled-sim"
SUFFIX = {"vivenu": "/api/accessusers", "octopus": "/rest/v1", "crowdmanager": "/api",
          "ticketing": "/v3", "chapterevents": ""}


def run(*args: str, script: bool = False) -> subprocess.Popen[str]:
    cmd = [str(SCRIPT)] if script else [sys.executable, "-m", "turnstiled.sim"]
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def lines(proc: subprocess.Popen[str], n: int) -> list[str]:
    assert proc.stdout is not None
    out = [proc.stdout.readline() for _ in range(n)]
    assert all(out), proc.stderr.read() if proc.stderr else ""
    return out


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()


def probe(d: dict) -> httpx.Response:
    c, url = d["credentials"], d["base_url"]
    now = int(time.time())
    return {
        "vivenu": lambda: HTTP.get(f"{url}/events", headers={"token": c["token"]}),
        "octopus": lambda: HTTP.get(f"{url}/Location/{c['location_id']}/services",
                                    headers={"Authorization": f"Bearer {c['api_key']}"}),
        "crowdmanager": lambda: HTTP.get(f"{url}/tickets", params={
            "date_init": now - 86400 * 7, "date_end": now + 60},
            headers={"Authorization": f"Basic {c['token']}"}),
        "ticketing": lambda: HTTP.get(f"{url}/tokens/{c['global_token_code']}",
                                      headers={"X-Client-Version": "3.0.0",
                                               "X-API-Key": c["api_key"]}),
        "chapterevents": lambda: HTTP.get(f"{url}/get_chapterevents/"),
    }[d["name"]]()


def test_all_prints_one_json_line_each_serves_and_stops_on_sigterm():
    proc = run("all", "--port-base", "0", "--tickets", "40", "--json", "--strings", "always",
               "--fault", "vivenu:GET /api/accessusers/events=503x1")
    try:
        found = [json.loads(line) for line in lines(proc, 5)]
        assert [d["name"] for d in found] == list(SUFFIX)
        for d in found:
            assert set(d) == {"name", "base_url", "credentials"}
            assert re.fullmatch(rf"http://127\.0\.0\.1:\d+{SUFFIX[d['name']]}", d["base_url"])
        assert "location_id" in found[1]["credentials"]
        assert probe(found[0]).status_code == 503  # the fault given on the command line
        assert [probe(d).status_code for d in found] == [200] * 5
        assert isinstance(probe(found[2]).json()["count"], str)  # --strings always
    finally:
        assert stop(proc) == 0


def test_one_emulator_in_text_and_sigint(tmp_path):
    proc = run("vivenu", "--port", "0", "--tickets", "10", "--seed", "4", script=True)
    try:
        line = lines(proc, 1)[0]
        m = re.fullmatch(r"vivenu\s+(http://127\.0\.0\.1:\d+/api/accessusers)\s+"
                         r"token=(\S+) event_ids=(\S+)\n", line)
        assert m, line
        r = HTTP.get(f"{m[1]}/tickets/v2/{m[3].split(',')[0]}", headers={"token": m[2]})
        assert r.json()["total"] == 4  # 10 tickets over three events
    finally:
        assert stop(proc, signal.SIGINT) == 0


def free_port_run(count: int = 5) -> int:
    """A port with *count* free ones from it (checked by binding; may race, so callers retry)."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    if base + count > 65535:
        return free_port_run(count)
    for p in range(base, base + count):
        with closing(socket.socket()) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return free_port_run(count)
    return base


def test_port_base_gives_five_consecutive_ports():
    for _ in range(5):
        base = free_port_run()
        proc = run("all", "--port-base", str(base), "--tickets", "5", "--json")
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            if not first:  # someone took a port meanwhile: try another run of ports
                continue
            found = [json.loads(first)] + [json.loads(x) for x in lines(proc, 4)]
            ports = [int(re.search(r":(\d+)", d["base_url"])[1]) for d in found]
            assert ports == list(range(base, base + 5))
            return
        finally:
            with suppress(ProcessLookupError):
                stop(proc)
    pytest.fail("no run of five free ports")


def test_help_documents_the_fault_syntax(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("[NAME:]ROUTE=SPEC", "KIND[!][:ARG][xN][%P][@K]", "429", "latency", "hang",
                 "stall", "reset", "truncate", "html200", "html502", "auth", "--json",
                 "--port-base"):
        assert word in out


@pytest.mark.parametrize("argv,message", [
    (["vivenu", "--fault", "*=explode"], "bad fault"),
    (["vivenu", "--fault", "octopus:*=500"], "is for octopus"),
    (["crowdmanager", "--strings", "sometimes"], None),
])
def test_bad_arguments_exit_with_a_message(capsys, argv, message):
    if message is None:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        return
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_taken_port_is_an_error_not_a_traceback(capsys):
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["octopus", "--port", str(s.getsockname()[1])]) == 2
    assert "turnstiled-sim:" in capsys.readouterr().err


@pytest.mark.parametrize("where", [[], ["--in-process"]])
def test_the_bench_script_downloads_every_ticket_once(capsys, where):
    from turnstiled.sim import bench

    assert bench.main(["--tickets", "2500", "--page", "400", *where]) == 0
    out = capsys.readouterr().out
    assert "2,500 tickets in 9 pages of up to 400" in out and "tickets/s" in out
