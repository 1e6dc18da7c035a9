"""The broker as ``config/mosquitto.conf`` and ``config/mosquitto.acl`` ship it."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path

from turnstiled.sim.broker import Broker, free_port

__all__ = ["Broker", "shipped_broker"]


def shipped_broker(workdir: Path, users: dict[str, str], venue: str) -> Broker:
    """The broker as ``config/mosquitto.conf`` and ``mosquitto.acl`` set it up."""
    workdir.mkdir(parents=True, exist_ok=True)
    shipped = Path(__file__).resolve().parent.parent / "config"
    pw, acl = workdir / "passwd", workdir / "acl"
    acl.write_text((shipped / "mosquitto.acl").read_text().replace("/arena/", f"/{venue}/"))
    pw.touch()
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
    port = free_port()
    conf = ((shipped / "mosquitto.conf").read_text()
            .replace("listener 1883\n", f"listener {port} 127.0.0.1\n")
            .replace("/etc/mosquitto/turnstiled.passwd", str(pw))
            .replace("/etc/mosquitto/turnstiled.acl", str(acl))
            + f"user {getpass.getuser()}\npersistence_location {workdir}/\n"
            f"log_dest file {workdir}/mosquitto.log\n")
    return Broker(workdir, port, conf)
