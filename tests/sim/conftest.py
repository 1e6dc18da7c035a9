"""Fixtures of the emulator tests: emulators on 127.0.0.1, real sockets, httpx clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from turnstiled.sim import Emulator, start_emulator

HTTP = httpx.Client(timeout=10)  # one client: no TLS set-up per request


@pytest.fixture
def start() -> Iterator[Callable[..., Emulator]]:
    """``start("vivenu", tickets=30)``: an emulator on a free port, stopped after the test."""
    running: list[Emulator] = []

    def _start(name: str, **kwargs: Any) -> Emulator:
        kwargs.setdefault("tickets", 30)
        emu = start_emulator(name, **kwargs)
        running.append(emu)
        return emu

    yield _start
    for emu in running:
        emu.stop()


def _admin(emu: Emulator, method: str, path: str = "", **kwargs: Any) -> httpx.Response:
    return HTTP.request(method, f"{emu.admin_url}/{path}".rstrip("/"), timeout=5, **kwargs)


@pytest.fixture
def admin() -> Callable[..., httpx.Response]:
    """``admin(emu, "POST", "tickets", json=...)``: a request to the emulator's admin API."""
    return _admin
