"""HTTP for the backends: httpx with TLS verification on and explicit timeouts.

:class:`Http` turns every way a cloud can fail into the backend error
hierarchy, so sync and the drain need one ``except`` per meaning: a 500,
a 429, an HTML error page, a connection reset or half a JSON document are
all :class:`TransientError`; 401/403 :class:`AuthError`; 412
:class:`UpgradeRequired`; a JSON 400/404 :class:`Rejected`, and a 4xx
that is an HTML page or no JSON at all (a wrong base URL, a proxy's 404
page) or a redirect (never followed: a base URL that moved or lacks its
trailing slash) :class:`Misconfigured`: it concerns the set-up, never a row.

A failure after the request was written (a reset or read timeout, a 5xx
other than 503) is marked ``ambiguous``: the cloud may have applied it.

Error texts never carry a credential or a full barcode: path segments
that look like codes are shown by their last four characters, and httpx's
own request log (every URL, at ``info``) is silenced.

httpx (with ssl and the CA store: some 12 MB of RSS) is imported and the
client made at the first request, or by :meth:`Http.open`: the daemon
holds a backend of every source to know which scans go up, but it sends
requests only for online checks, and :class:`~turnstiled.online.OnlineChecker`
opens those clients when it is made, never at a scan (issue 14).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from turnstiled.backends.base import (
    AuthError,
    Misconfigured,
    Rejected,
    TimedOut,
    TransientError,
    UpgradeRequired,
)
from turnstiled.backends.window import CloudClock
from turnstiled.worker import report_progress

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

# httpx logs every request's full URL at info, and our URLs carry barcodes
# (vivenu) and admission codes (TickeTing): its warnings are all we keep.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

USER_AGENT = "turnstiled/0.1"
# A path segment that may be a barcode, a code or an id: 6+ characters with a
# digit, or 6+ capitals (chapter-event ids, TickeTing admission codes).
_CODE = re.compile(r"^(?=.*\d)[^/]{6,}$|^[A-Z0-9_-]{6,}$")
# Statuses whose request the server (or one behind a proxy) may have applied.
_AMBIGUOUS = (500, 502, 504)


def _not_sent() -> tuple[type[Exception], ...]:
    """httpx errors raised before a byte of the request reached the server."""
    import httpx
    return (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
            httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def mask(text: str) -> str:
    """*text* as errors and logs may show it: only its last four characters."""
    return "…" + text[-4:] if len(text) > 4 else "…"


def masked_path(path: str) -> str:
    """*path* with every code-like segment masked (``tickets/…7Q2X``)."""
    return "/".join(mask(seg) if _CODE.match(seg) else seg for seg in path.split("/"))


def _scrub(text: str, path: str) -> str:
    """*text* without the code-like segments of *path* (servers echo paths)."""
    for seg in path.split("/"):
        if _CODE.match(seg):
            text = text.replace(seg, mask(seg))
            raw = unquote(seg)
            if raw != seg:
                text = text.replace(raw, mask(raw))
    return text


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
        self._options = (base_url.rstrip("/") + "/",
                         {"User-Agent": USER_AGENT, "Accept": "application/json",
                          **(headers or {})},
                         auth, timeout, connect_timeout, verify)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """The httpx client, made (and httpx imported) at the first use."""
        client = self._client
        return client if client is not None else self.open()

    def open(self) -> httpx.Client:
        """Make the client now if it is not made yet (see the module's docstring)."""
        with self._lock:
            if self._client is None:
                import httpx
                base_url, headers, auth, timeout, connect_timeout, verify = self._options
                self._client = httpx.Client(
                    base_url=base_url, headers=headers, auth=auth,
                    timeout=httpx.Timeout(timeout, connect=connect_timeout),
                    verify=verify, follow_redirects=False)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, json_bytes: bytes | None = None,
                timeout: float | None = None,
                ok: tuple[int, ...] = (200,), allow: tuple[int, ...] = (),
                headers: dict[str, str] | None = None,
                decode: Callable[[bytes], Any] | None = None) -> tuple[int, Any]:
        """Send one request; the decoded JSON of an expected answer, else an error.

        *decode* reads the body instead of ``json.loads`` (a faster decoder
        for a bulk endpoint); a ``ValueError`` from it means "not JSON".
        *json_bytes*: a JSON body encoded beforehand (:func:`json_bytes`).

        Statuses in *allow* are returned (with their decoded body or None)
        instead of raised, for endpoints where e.g. 404 is a normal answer.
        """
        kwargs: dict[str, Any] = {"params": params}
        if headers:
            kwargs["headers"] = headers
        if json_body is not None:
            kwargs["json"] = json_body
        elif json_bytes is not None:
            kwargs["content"] = json_bytes
            kwargs["headers"] = {**(headers or {}), "Content-Type": "application/json"}
        if timeout is not None:
            kwargs["timeout"] = timeout
        what = f"{self.vendor} {method} {masked_path(path)}"
        client = self.client
        import httpx  # imported by then (self.client)
        try:
            try:
                resp = client.request(method, path.lstrip("/"), **kwargs)
                # A response and its stream refer to each other (httpx's
                # BoundSyncStream), so a read response lived on, body and all
                # (a vivenu page: ~0.5 MB), until the cycle collector's next
                # pass over its generation: some 20 pages at once in a full
                # sync (issue 14). Its body as its stream ends the cycle.
                resp.stream = httpx.ByteStream(resp.read())
            finally:
                report_progress()
        except httpx.TimeoutException as exc:
            raise TimedOut(f"{what}: timed out ({type(exc).__name__})",
                                 ambiguous=not isinstance(exc, _not_sent())) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientError(_scrub(f"{what}: {type(exc).__name__}: {exc}", path),
                                 ambiguous=not isinstance(exc, _not_sent())) from None
        self.clock.observe(resp.headers.get("Date"))
        status = resp.status_code
        if status in ok or status in allow:
            return status, self._json(resp, what, required=status in ok, decode=decode)
        msg = _scrub(f"{what}: HTTP {status} {_message(resp)}", path)
        if 300 <= status < 400:  # follow_redirects is off: no retry reaches the answer
            raise Misconfigured(f"{what}: HTTP {status} redirect (wrong base URL, or its "
                                "trailing slash missing?)", status=status)
        if status in (401, 403):
            raise AuthError(msg, status=status)
        if status == 412:
            raise UpgradeRequired(msg, status=status)
        if status in (429, 503):
            raise TransientError(msg, status=status,
                                 retry_after=retry_after(resp.headers.get("Retry-After")))
        if status in (400, 404, 405, 409, 410, 422):
            if not _is_json(resp):
                raise Misconfigured(f"{what}: HTTP {status} with no JSON body (wrong base "
                                    "URL, or a proxy's page?)", status=status)
            raise Rejected(msg, status=status)
        raise TransientError(msg, status=status, ambiguous=status in _AMBIGUOUS)

    @staticmethod
    def _json(resp: httpx.Response, what: str, *, required: bool,
              decode: Callable[[bytes], Any] | None = None) -> Any:
        status = resp.status_code
        if "html" in resp.headers.get("Content-Type", "").lower():
            if 400 <= status < 500:  # an allowed 404 that a proxy or a wrong URL answered
                raise Misconfigured(f"{what}: HTML page instead of JSON (HTTP {status}): "
                                    "wrong base URL, or a proxy's page?", status=status)
            raise TransientError(f"{what}: HTML page instead of JSON (HTTP {status})",
                                 status=status)
        try:
            return resp.json() if decode is None else decode(resp.content)
        except ValueError:  # json.JSONDecodeError, UnicodeDecodeError, msgspec.DecodeError
            if not required and not resp.content:
                return None
            raise TransientError(f"{what}: answer is not complete JSON "
                                 f"({len(resp.content)} bytes)", status=status) from None


def json_bytes(body: Any) -> bytes:
    """*body* encoded as httpx encodes ``json=`` (the same bytes on the wire)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _is_json(resp: httpx.Response) -> bool:
    if "html" in resp.headers.get("Content-Type", "").lower():
        return False
    try:
        resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True
