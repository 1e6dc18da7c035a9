"""The configuration half of ``scripts/provision``: write a gate's turnstiled.toml.

Run by the provisioning script with the machine's own ``python3`` before
turnstiled is installed, so this module uses the standard library only.
It reads the secret (device token, admission code, password) from a file
the script names, never from an argument, and writes the configuration to
a file of mode 0600; the script installs it (root:turnstiled, 0640).

For TickeTing the secret is the integration key the gate sends with its
admission-code exchange (stored as ``api_key``). The admission code comes
from a file too, or is issued for this gate (``POST /events/{event}/tokens``,
tokens are meant one per device) with that key or with a separate organiser
key, which is used once and stored nowhere. A second run reuses the code
already in the configuration while TickeTing still knows it.

Errors are one line on standard error and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# backend -> (the key that holds the secret, keys that must be given)
BACKENDS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "local": (None, ()),
    "vivenu": ("token", ()),
    "ticketing": ("api_key", ()),
    "chapterevents": ("password", ("base_url",)),
    "crowdmanager": ("token", ("base_url",)),
    "octopus": ("api_key", ("base_url", "event")),
}
TICKETING_URL = "https://api.ticketingevents.com/v3"
TICKETING_VERSION = "3.0.0"
ADMISSION_CODE = re.compile(r"^[0-9A-Z]{8}$")


class ProvisionError(Exception):
    """A bad argument or an answer from a cloud that stops provisioning."""


def q(text: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML)."""
    return json.dumps(text, ensure_ascii=False)


def read_secret(path: str, what: str) -> str:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"cannot read {what} from {path}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    secret = text.strip()
    if not secret or "\n" in secret:
        raise ProvisionError(f"{what} in {path} must be one non-empty line")
    return secret


def scanner_type(device: str) -> str:
    return "hid" if device.startswith(("/dev/input/", "name:")) else "serial"


def _request(method: str, url: str, key: str, body: Any = None) -> Any:
    if not url.startswith(("https://", "http://")):
        raise ProvisionError(f"--base-url must start with https://, not {url[:12]!r}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310
        "X-API-Key": key, "X-Client-Version": TICKETING_VERSION,
        "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 (checked above)
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise ProvisionError(f"TickeTing {method} {url.split('/v3', 1)[-1]}: HTTP {exc.code}"
                             + _why(exc)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ProvisionError(f"TickeTing {url}: {getattr(exc, 'reason', exc)}") from None


def _why(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return f" ({body.get('message') or body.get('error')})"
    except (ValueError, AttributeError, OSError):
        return ""


def ticketing_token(base: str, event: str, key: str, sections: list[str]) -> tuple[str, int]:
    """Issue an admission token for *event*; returns its code and how many sections."""
    base = base.rstrip("/")
    if not sections:
        found = _request("GET", f"{base}/events/{event}/tokens?global=true", key)
        entries = found.get("entries") if isinstance(found, dict) else None
        if not entries:
            raise ProvisionError(f"TickeTing event {event} has no global token to take "
                                 "its sections from: pass --sections")
        sections = list(entries[0].get("sections") or [])
    made = _request("POST", f"{base}/events/{event}/tokens", key, {"sections": sections})
    code = made.get("code") if isinstance(made, dict) else None
    if not isinstance(code, str) or not ADMISSION_CODE.match(code):
        raise ProvisionError("TickeTing issued no admission token code")
    return code, len(sections)


def ticketing_code_valid(base: str, code: str, event: str, key: str) -> bool:
    """Whether TickeTing still knows *code* as a token of *event* (404: it does not)."""
    try:
        found = _request("GET", f"{base.rstrip('/')}/tokens/{code}", key)
    except ProvisionError as exc:
        if "HTTP 404" in str(exc):
            return False
        raise
    return isinstance(found, dict) and str(found.get("event", "")).rstrip("/").endswith(
        f"/events/{event}")


def existing_source(path: str | None, backend: str) -> dict[str, Any]:
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, "rb") as fh:
            return dict(tomllib.load(fh).get("sources", {}).get(backend, {}))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def render(args: argparse.Namespace, secrets: dict[str, str]) -> str:
    """The configuration text for *args*; *secrets* are the source's secret keys."""
    lines = [
        "# Written by scripts/provision. Every key, its default and meaning:",
        "# config/turnstiled.toml in the turnstiled source. Keep this file",
        "# root:turnstiled 0640: it holds the ticket cloud's secret.",
        "", "[gate]", f"id = {q(args.gate_name)}",
    ]
    if args.event and args.backend in ("local", "vivenu", "crowdmanager", "chapterevents"):
        lines.append(f"events = [{q(args.event)}]")
    lines += ["", "[[scanner]]", f"name = {q('entry' if args.direction == 'in' else 'exit')}",
              f"type = {q(scanner_type(args.scanner))}", f"direction = {q(args.direction)}"]
    if scanner_type(args.scanner) == "serial":
        lines += [f"url = {q(args.scanner)}", f"baudrate = {args.baudrate}"]
    else:
        lines.append(f"device = {q(args.scanner)}")
    if secrets:
        lines += ["", f"[sources.{args.backend}]"]
        lines += [f"{key} = {q(value)}" for key, value in secrets.items()]
        if args.base_url:
            lines.append(f"base_url = {q(args.base_url)}")
        if args.backend in ("vivenu", "crowdmanager") and args.event:
            lines.append(f"events = [{q(args.event)}]")
        if args.backend == "chapterevents" and args.event:
            lines.append(f"event = {q(args.event)}")
        if args.backend == "octopus":
            lines.append(f"location_id = {q(args.event)}")
        if args.backend == "ticketing":
            lines.append(f"device = {q(args.gate_name)}")
    return "\n".join(lines) + "\n"


def ticketing_code(args: argparse.Namespace, api_key: str) -> tuple[str, str]:
    """The admission code to store, and a line saying where it came from."""
    if args.admission_code_file:
        code = read_secret(args.admission_code_file, "the admission code").upper()
        if not ADMISSION_CODE.match(code):
            raise ProvisionError("the TickeTing admission code is 8 characters, 0-9 and A-Z")
        return code, "ticketing: admission code from " + (
            "standard input" if args.admission_code_file == "-" else args.admission_code_file)
    if not args.event:
        raise ProvisionError("--event is required to issue a TickeTing admission token "
                             "(or give --admission-code-file)")
    base = args.base_url or TICKETING_URL
    old = str(existing_source(args.existing, "ticketing").get("admission_code") or "")
    if ADMISSION_CODE.match(old) and ticketing_code_valid(base, old, args.event, api_key):
        return old, "ticketing: keeping this gate's admission token"
    if args.dry_run:
        return "DRYRUN00", f"ticketing: would issue an admission token for event {args.event}"
    issuer = api_key
    if args.organiser_key_file:
        issuer = read_secret(args.organiser_key_file, "the organiser key")
    sections = [s for s in (args.sections or "").split(",") if s]
    code, n = ticketing_token(base, args.event, issuer, sections)
    note = "; the organiser key is not stored" if args.organiser_key_file else ""
    return code, (f"ticketing: issued this gate's admission token for event {args.event} "
                  f"({n} section(s)){note}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="provision-config", description=__doc__)
    p.add_argument("--gate-name", required=True)
    p.add_argument("--direction", choices=("in", "out"), required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--event", default="")
    p.add_argument("--scanner", required=True)
    p.add_argument("--baudrate", type=int, default=9600)
    p.add_argument("--token-file", default="")
    p.add_argument("--admission-code-file", default="")
    p.add_argument("--organiser-key-file", default="")
    p.add_argument("--sections", default="")
    p.add_argument("--base-url", default="")
    p.add_argument("--existing", help="the configuration installed now, if any")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        if args.backend not in BACKENDS:
            raise ProvisionError(f"unknown backend {args.backend!r} "
                                 f"(known: {', '.join(BACKENDS)})")
        key, needed = BACKENDS[args.backend]
        for name in needed:
            if not getattr(args, name):
                raise ProvisionError(f"--{name.replace('_', '-')} is required for "
                                     f"--backend {args.backend}")
        if not args.gate_name.strip():
            raise ProvisionError("--gate-name must not be empty")
        # what turnstiled --check refuses, refused here: before anything is installed,
        # and in a --dry-run, which never runs that check
        if args.base_url and not args.base_url.startswith(("https://", "http://")):
            raise ProvisionError("--base-url must start with https:// or http://, "
                                 f"not {args.base_url[:12]!r}")
        if args.baudrate < 1:
            raise ProvisionError(f"--baudrate must be a positive number, not {args.baudrate}")
        secrets: dict[str, str] = {}
        note = ""
        if key is not None:
            if not args.token_file:
                raise ProvisionError(f"--token-file is required for --backend {args.backend} "
                                     "(a file, or - for standard input)")
            secrets[key] = read_secret(args.token_file, f"the {args.backend} {key}")
            if args.backend == "ticketing":
                code, note = ticketing_code(args, secrets[key])
                secrets = {"admission_code": code, **secrets}
        text = render(args, secrets)
    except ProvisionError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 2
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
