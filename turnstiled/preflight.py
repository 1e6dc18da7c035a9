"""What stops start-up before anything is opened; ``turnstiled --check`` runs the same.

The daemon refuses to start on each problem found here with one line and
exit status 78 (systemd's ``RestartPreventExitStatus``), so ``--check``
refuses exactly what the daemon would. Warnings are printed and start-up
goes on.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from importlib.metadata import entry_points

from turnstiled.config import Config
from turnstiled.datafiles import check_data_dir, check_journal
from turnstiled.errors import DataFileError

# gpiozero's own order of preference when GPIOZERO_PIN_FACTORY is unset.
# Its last resort, "native", is left out: it cannot drive a Pi 5 and warns
# on every start, so a gate without a real GPIO library refuses to start.
DEFAULT_FACTORIES = (
    ("lgpio", "gpiozero.pins.lgpio"),
    ("rpigpio", "gpiozero.pins.rpigpio"),
    ("pigpio", "gpiozero.pins.pigpio"),
)
INSTALL_LGPIO = ("install lgpio: apt install python3-lgpio (a venv needs "
                 "--system-site-packages), or pip install lgpio in the venv")


def pin_factory_problem(env: Mapping[str, str] = os.environ) -> str | None:
    """Why gpiozero could not load a pin factory, in one line; None when it can."""
    name = env.get("GPIOZERO_PIN_FACTORY")
    if name:
        eps = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
        ep = eps.get(name) or eps.get(name.lower())
        if ep is None:
            return (f"GPIOZERO_PIN_FACTORY={name}: gpiozero has no such pin factory "
                    f"(known: {', '.join(sorted(eps))})")
        try:
            ep.load()
        except Exception as exc:  # ImportError, or RPi.GPIO's RuntimeError off a Pi
            hint = INSTALL_LGPIO if ep.name == "lgpio" else "install its library"
            return f"GPIOZERO_PIN_FACTORY={name} cannot be loaded ({exc}): {hint}"
        return None
    for _name, module in DEFAULT_FACTORIES:
        try:
            importlib.import_module(module)
        except Exception:  # noqa: S112 - the next library may do; the line below says what
            continue
        return None
    return f"no GPIO library for gpiozero's pin factory: {INSTALL_LGPIO}"


def problems(cfg: Config, env: Mapping[str, str] = os.environ, *,
             checking: bool = False) -> list[str]:
    """What stops start-up: the first problem found, as a one-line list; empty if none.

    The search ends at the first problem (the daemon refuses with one line,
    and a missing GPIO library is told before the data directory is created).
    *checking*: for ``--check``, which may run as another user than the
    service's and must change nothing (see :func:`check_data_dir`).
    """
    factory = pin_factory_problem(env)
    if factory:
        return [factory]  # before the data directory is created
    try:
        check_data_dir(cfg.paths.data_dir, as_other_user=checking)
        check_journal(cfg.paths.journal_db, as_other_user=checking)
    except DataFileError as exc:
        return [str(exc)]
    return []


def warnings(cfg: Config) -> list[str]:
    """What a technician should know, though the gate can run."""
    out = []
    if not cfg.scanner:
        out.append("no [[scanner]] configured: this gate can only be opened by hand")
    return out
