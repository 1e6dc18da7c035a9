"""scripts/provision into a root directory, as a technician preparing an image would."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from turnstiled.sim import start_emulator

REPO = Path(__file__).resolve().parent.parent
PROVISION = REPO / "scripts" / "provision"
SECRET = "vv-device-token-5f1c2e9d"
BASE = ["--gate-name", "lane-1", "--backend", "vivenu", "--event", "ev-1",
        "--scanner", "/dev/turnstile-scanner-serial", "--token-file", "-", "--force"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="provisioning writes files as root")


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """turnstiled and its dependencies as wheels: provisioning with no network."""
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                    "-w", str(out), str(REPO)], check=True, capture_output=True, timeout=600)
    return out


def blank_root(path: Path) -> Path:
    """The /etc of a fresh system: root, and the dialout and input groups (no gpio)."""
    etc = path / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\ninput:x:101:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\ndialout:*::\ninput:*::\n")
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o640)
    return path


def provision(root: Path, *args: str, stdin: str = SECRET + "\n", trace: Path | None = None,
              wheelhouse: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(PROVISION), "--root", str(root), *args]
    if wheelhouse is not None:
        cmd += ["--wheelhouse", str(wheelhouse)]
    if trace is not None:  # every program started, with its whole argument list
        cmd = ["strace", "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o", str(trace), *cmd]
    tmp = root.parent / "tmp"  # provision's own temp dir goes here (TMPDIR)
    tmp.mkdir(exist_ok=True)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=900,
                          check=False, env={**os.environ, "TMPDIR": str(tmp)})


def members(root: Path, group: str) -> list[str]:
    for line in (root / "etc" / "group").read_text().splitlines():
        name, _, _, users = line.split(":")
        if name == group:
            return users.split(",") if users else []
    raise AssertionError(f"no group {group}")


def gid(root: Path, group: str) -> int:
    for line in (root / "etc" / "group").read_text().splitlines():
        if line.split(":")[0] == group:
            return int(line.split(":")[2])
    raise AssertionError(f"no group {group}")


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.lstat().st_mode,
                                       b"" if p.is_dir() or p.is_symlink() else p.read_bytes())
            for p in root.rglob("*")}


def test_provision_root_twice(tmp_path, wheelhouse):
    root = blank_root(tmp_path / "root")
    trace = tmp_path / "exec.trace"
    first = provision(root, *BASE, trace=trace, wheelhouse=wheelhouse)
    assert first.returncode == 0, first.stderr
    assert "not a Raspberry Pi" in first.stderr  # warned, and went on because of --force

    # the service user, in the groups that reach the hardware (gpio created: it was missing)
    passwd = {ln.split(":")[0]: ln.split(":") for ln in
              (root / "etc/passwd").read_text().splitlines()}
    user = passwd["turnstiled"]
    assert user[5] == "/var/lib/turnstiled" and user[6] == "/usr/sbin/nologin"
    assert int(user[3]) == gid(root, "turnstiled")
    for group in ("gpio", "dialout", "input"):
        assert "turnstiled" in members(root, group)

    # the configuration: from the arguments, secret inside, root:turnstiled 0640
    conf = root / "etc/turnstiled/turnstiled.toml"
    st = conf.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
    assert st.st_gid == gid(root, "turnstiled")
    cfg = tomllib.loads(conf.read_text())
    assert cfg["gate"]["id"] == "lane-1" and cfg["gate"]["events"] == ["ev-1"]
    assert cfg["scanner"] == [{"name": "entry", "type": "serial", "direction": "in",
                               "url": "/dev/turnstile-scanner-serial", "baudrate": 9600}]
    assert cfg["sources"]["vivenu"]["token"] == SECRET
    check = subprocess.run([str(root / "opt/turnstiled/bin/python"), "-m", "turnstiled.daemon",
                            "--check", "--config", str(conf)], capture_output=True, text=True,
                           check=False, env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
    assert check.returncode == 0, check.stderr

    # unit, udev rules, enablement and the command on PATH, as shipped
    unit = root / "etc/systemd/system/turnstiled.service"
    assert unit.read_bytes() == (REPO / "systemd/turnstiled.service").read_bytes()
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    rules = root / "etc/udev/rules.d/99-turnstiled.rules"
    assert rules.read_bytes() == (REPO / "hardware/99-turnstiled.rules").read_bytes()
    wants = root / "etc/systemd/system/multi-user.target.wants/turnstiled.service"
    assert os.readlink(wants) == "/etc/systemd/system/turnstiled.service"
    assert os.readlink(root / "usr/local/bin/turnstilectl") == "/opt/turnstiled/bin/turnstilectl"
    # the venv runs from /opt/turnstiled once the image boots, not from where it was built
    ctl = (root / "opt/turnstiled/bin/turnstilectl").read_text().splitlines()[0]
    assert ctl == "#!/opt/turnstiled/bin/python"

    # the secret: in no argument list, no output, no file anyone may read
    assert SECRET not in first.stdout + first.stderr
    assert SECRET not in trace.read_text()
    holders = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
               and SECRET.encode() in p.read_bytes()]
    assert holders == [conf]
    assert not any(p.stat().st_mode & stat.S_IROTH for p in holders)
    assert not list((tmp_path / "tmp").iterdir())  # its temp dir is gone

    # a second run with the same inputs changes nothing and says so
    before = snapshot(root)
    second = provision(root, *BASE, wheelhouse=wheelhouse)
    assert second.returncode == 0, second.stderr
    assert "no changes" in second.stdout and "changed:" not in second.stdout
    assert snapshot(root) == before

    # a changed input changes only what it touches; journal and cache stay
    state = root / "var/lib/turnstiled"
    state.mkdir(parents=True)
    (state / "journal.db").write_bytes(b"precious")
    third = provision(root, *[("lane-2" if a == "lane-1" else a) for a in BASE],
                      wheelhouse=wheelhouse)
    assert third.returncode == 0, third.stderr
    assert re.findall(r"^changed: (.*)$", third.stdout, re.M) == ["/etc/turnstiled/turnstiled.toml"]
    assert (state / "journal.db").read_bytes() == b"precious"

    # a configuration the installed turnstiled refuses is not installed
    before = conf.read_bytes()
    # (a URL with no host: provision itself refuses only a missing http(s)://)
    bad = provision(root, *BASE, "--base-url", "http://", wheelhouse=wheelhouse)
    assert bad.returncode == 78 and "refused, not installed" in bad.stderr
    assert "base_url" in bad.stderr.splitlines()[-1]
    assert conf.read_bytes() == before


def test_unit_as_installed_passes_systemd_analyze_verify(tmp_path, wheelhouse):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: scripts/_env.sh installs the systemd package")
    root = blank_root(tmp_path / "root")
    assert provision(root, *BASE, wheelhouse=wheelhouse).returncode == 0
    # verify checks that ExecStart= programs exist on this machine: point the
    # installed unit's /opt/turnstiled at the copy inside the root
    unit = (root / "etc/systemd/system/turnstiled.service").read_text()
    check = tmp_path / "verify" / "turnstiled.service"
    check.parent.mkdir()
    check.write_text(unit.replace("/opt/turnstiled/", f"{root}/opt/turnstiled/"))
    out = subprocess.run(["systemd-analyze", "verify", str(check)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0 and "turnstiled" not in out.stderr, out.stderr


def test_dry_run_changes_nothing(tmp_path):
    root = blank_root(tmp_path / "root")
    before = snapshot(root)
    out = provision(root, "--dry-run", *BASE)
    assert out.returncode == 0, out.stderr
    assert "would change: user turnstiled" in out.stdout
    assert "would change: /etc/turnstiled/turnstiled.toml" in out.stdout
    assert "changed:" not in out.stdout.replace("would change:", "")
    assert snapshot(root) == before
    assert SECRET not in out.stdout + out.stderr


def test_help_changes_nothing(tmp_path):
    out = subprocess.run([str(PROVISION), "--help"], capture_output=True, text=True,
                         check=False, timeout=30)
    assert out.returncode == 0 and "usage: scripts/provision" in out.stdout
    assert "--dry-run" in out.stdout and "--root DIR" in out.stdout


@pytest.mark.parametrize(("args", "message"), [
    ([a for a in BASE if a not in ("--gate-name", "lane-1")], "--gate-name is required"),
    ([("eventbrite" if a == "vivenu" else a) for a in BASE], "unknown backend 'eventbrite'"),
    ([*BASE, "--token", SECRET], "from a file or standard input only"),
    ([*BASE[:-1]], "not a Raspberry Pi OS system; add --force"),
    (["--gate-name", "g", "--backend", "vivenu", "--scanner", "/dev/ttyUSB0", "--force"],
     "--token-file is required"),
    (["--gate-name", "g", "--backend", "octopus", "--scanner", "/dev/ttyUSB0", "--force",
      "--token-file", "-"], "--base-url is required"),
    (["--gate-name", "g", "--backend", "ticketing", "--scanner", "/dev/ttyUSB0", "--force",
      "--token-file", "-"], "--event is required to issue"),
    (["--direction", "sideways", *BASE], "--direction must be in or out"),
    # refused by turnstiled --check too, but only after packages, user and venv
    (["--gate-name", "g", "--backend", "chapterevents", "--scanner", "/dev/ttyUSB0",
      "--force", "--token-file", "-", "--base-url", "tickets.example.org"],
     "--base-url must start with https:// or http://"),
    ([*BASE, "--baudrate", "0"], "--baudrate must be a positive number"),
])
def test_one_line_errors(tmp_path, args, message):
    root = blank_root(tmp_path / "root")
    before = snapshot(root)
    out = provision(root, *args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert SECRET not in out.stderr
    assert snapshot(root) == before  # refused before anything was written


def test_a_root_that_is_no_system_image_is_one_line(tmp_path):
    root = tmp_path / "root"  # e.g. the image's partition not mounted yet
    root.mkdir()
    out = provision(root, "--dry-run", *BASE)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "has no etc/passwd" in out.stderr, out.stderr
    assert list(root.iterdir()) == []


def test_ticketing_issues_the_gates_own_token_with_an_organiser_key(tmp_path, wheelhouse):
    emu = start_emulator("ticketing", tickets=20)
    try:
        creds = emu.credentials
        organiser = "0f" * 16  # a second integration key, the organiser's own
        emu.state.keys[organiser] = {"admin": True}
        key_file = tmp_path / "integration.key"
        key_file.write_text(creds["api_key"] + "\n")
        key_file.chmod(0o600)
        root = blank_root(tmp_path / "root")
        args = ["--gate-name", "lane-7", "--backend", "ticketing", "--event", creds["event"],
                "--scanner", "name:Scanner", "--direction", "out", "--base-url",
                emu.base_url, "--token-file", str(key_file), "--organiser-key-file", "-",
                "--force"]
        tokens_before = len(emu.state.tokens)
        first = provision(root, *args, stdin=organiser + "\n", wheelhouse=wheelhouse)
        assert first.returncode == 0, first.stderr
        assert "issued this gate's admission token" in first.stdout
        assert len(emu.state.tokens) == tokens_before + 1
        conf = root / "etc/turnstiled/turnstiled.toml"
        cfg = tomllib.loads(conf.read_text())
        src = cfg["sources"]["ticketing"]
        code = src["admission_code"]
        token = emu.state.tokens[code]
        assert not token["global"] and token["event"] == creds["event"]
        assert set(token["sections"]) == set(emu.state.event_sections(creds["event"]))
        assert src["api_key"] == creds["api_key"] and src["device"] == "lane-7"
        assert cfg["scanner"][0]["type"] == "hid" and cfg["scanner"][0]["direction"] == "out"
        # the organiser key is stored nowhere and shown nowhere; the code is not shown
        assert not [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                    and organiser.encode() in p.read_bytes()]
        assert organiser not in first.stdout + first.stderr and code not in first.stdout
        # a second run keeps the token it issued: one token per device, not one per run
        second = provision(root, *args, stdin=organiser + "\n", wheelhouse=wheelhouse)
        assert second.returncode == 0, second.stderr
        assert "no changes" in second.stdout
        assert len(emu.state.tokens) == tokens_before + 1
        # the organiser invalidates it (DELETE, as TickeTing allows): the next run issues anew
        gone = httpx.delete(f"{emu.base_url}/events/{creds['event']}/tokens/{token['id']}",
                            headers={"X-API-Key": organiser, "X-Client-Version": "3.0.0"})
        assert gone.status_code == 200
        third = provision(root, *args, stdin=organiser + "\n", wheelhouse=wheelhouse)
        assert third.returncode == 0, third.stderr
        new_code = tomllib.loads(conf.read_text())["sources"]["ticketing"]["admission_code"]
        assert new_code != code and new_code in emu.state.tokens
        # a refused organiser key is one line, and nothing changes
        other = blank_root(tmp_path / "other")
        before = snapshot(other)
        bad = provision(other, *args, stdin="0" * 32 + "\n", wheelhouse=wheelhouse)
        assert bad.returncode == 2 and "HTTP 403" in bad.stderr
        assert bad.stderr.count("\n") == 1 and snapshot(other) == before
    finally:
        emu.stop()


def test_ticketing_with_a_given_admission_code(tmp_path, wheelhouse):
    emu = start_emulator("ticketing", tickets=20)
    try:
        creds = emu.credentials
        code_file = tmp_path / "code"
        code_file.write_text(creds["section_token_code"].lower() + "\n")
        root = blank_root(tmp_path / "root")
        out = provision(root, "--gate-name", "lane-8", "--backend", "ticketing", "--scanner",
                        "/dev/ttyUSB0", "--base-url", emu.base_url, "--token-file", "-",
                        "--admission-code-file", str(code_file), "--force",
                        stdin=creds["api_key"] + "\n", wheelhouse=wheelhouse)
        assert out.returncode == 0, out.stderr
        src = tomllib.loads((root / "etc/turnstiled/turnstiled.toml").read_text())[
            "sources"]["ticketing"]
        assert src["admission_code"] == creds["section_token_code"]
        assert src["api_key"] == creds["api_key"]
    finally:
        emu.stop()


def test_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck missing: scripts/_env.sh installs it")
    scripts = [REPO / "scripts" / n for n in ("provision", "_env.sh", "demo", "test", "bench")]
    out = subprocess.run(["shellcheck", "-e", "SC1091", *map(str, scripts)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout
