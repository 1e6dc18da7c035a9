"""HTTP for the backends: httpx with TLS verification on and explicit timeouts.

:class:`Http` turns every way a cloud can fail into the backend error
hierarchy, so sync and the drain need one ``except`` per meaning: a 500,
a 429, an HTML error page, a connection reset or half a JSON document are
all :class:`TransientError`; 401/403 :class:`AuthError`; 412
:class:`UpgradeRequired`; 400/404 :class:`Rejected`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from turnstiled.backends.base import (
    AuthError,
    Rejected,
    TransientError,
    UpgradeRequired,
)
from turnstiled.backends.window import CloudClock

logger = logging.getLogger(__name__)

USER_AGENT = "turnstiled/0.1"


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message(resp: httpx.Response) -> str:
    text = resp.text[:300]
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return text.strip().replace("\n", " ")[:200] or resp.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error", "status", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return json.dumps(body)[:200]


class Http:
    """One vendor's HTTP client."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None,
                 auth: httpx.Auth | None = None, timeout: float = 10.0,
                 connect_timeout: float = 3.0, verify: bool | str = True,
                 vendor: str = "") -> None:
        self.vendor = vendor
        self.clock = CloudClock()  # the cloud's time, from every answer's Date header
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=verify,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, timeout: float | None = None,
                ok: tuple[int, ...] = (200,), allow: tuple[int, ...] = (),
                headers: dict[str, str] | None = None,
                decode: Callable[[bytes], Any] | None = None) -> tuple[int, Any]:
        """Send one request; the decoded JSON of an expected answer, else an error.

        *decode* reads the body instead of ``json.loads`` (a faster decoder
        for a bulk endpoint); a ``ValueError`` from it means "not JSON".

        Statuses in *allow* are returned (with their decoded body or None)
        instead of raised, for endpoints where e.g. 404 is a normal answer.
        """
        kwargs: dict[str, Any] = {"params": params}
        if headers:
            kwargs["headers"] = headers
        if json_body is not None:
            kwargs["json"] = json_body
        if timeout is not None:
            kwargs["timeout"] = timeout
        what = f"{self.vendor} {method} {path}"
        try:
            resp = self.client.request(method, path.lstrip("/"), **kwargs)
            resp.read()
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what}: timed out ({type(exc).__name__})") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from None
        self.clock.observe(resp.headers.get("Date"))
        status = resp.status_code
        if status in ok or status in allow:
            return status, self._json(resp, what, required=status in ok, decode=decode)
        msg = f"{what}: HTTP {status} {_message(resp)}"
        if status in (401, 403):
            raise AuthError(msg, status=status)
        if status == 412:
            raise UpgradeRequired(msg, status=status)
        if status in (429, 503):
            raise TransientError(msg, status=status,
                                 retry_after=retry_after(resp.headers.get("Retry-After")))
        if status in (400, 404, 409, 410, 422):
            raise Rejected(msg, status=status)
        raise TransientError(msg, status=status)

    @staticmethod
    def _json(resp: httpx.Response, what: str, *, required: bool,
              decode: Callable[[bytes], Any] | None = None) -> Any:
        ctype = resp.headers.get("Content-Type", "")
        if "html" in ctype.lower():
            raise TransientError(f"{what}: HTML page instead of JSON (HTTP {resp.status_code})",
                                 status=resp.status_code)
        try:
            return resp.json() if decode is None else decode(resp.content)
        except ValueError:  # json.JSONDecodeError, UnicodeDecodeError, msgspec.DecodeError
            if not required and not resp.content:
                return None
            raise TransientError(f"{what}: answer is not complete JSON "
                                 f"({len(resp.content)} bytes)", status=resp.status_code) from None
