"""TickeTing's admission tokens and API keys: the gate's code exchange, who may call what.

Every request needs ``X-Client-Version`` of at least 3.0.0 (else 412
``{"error": "Please upgrade your client to complete this request"}``) and
``X-API-Key`` (missing or empty: 401 ``{"message": "Your request could not
be authenticated."}``; unknown, or valid but without permission for the
resource: 403 ``{"message": "You are restricted from accessing this
resource."}``).

- ``GET /tokens/{code}`` with the integration key (401 without any key,
  403 with a key that is not an integration's): an admission token code
  (``[0-9A-Z]{8}``) for ``{key, event, sections}``; the key is the gate's
  ``X-API-Key`` from then on, valid for that event (and, for admissions,
  those sections) only. An unknown or invalidated code: 404 "The provided
  code does not belong to any event token".
- ``PUT /events/{event}/tokens/{token}`` ``{sections}`` changes a token's
  sections, ``DELETE`` invalidates it (its key stops working: 403); the
  global token cannot be changed or invalidated (409).
- ``POST /events/{event}/tokens`` ``{sections: [...]}`` issues a token (201),
  ``GET /events/{event}/tokens[?global=]`` lists, ``.../tokens/{token}``
  shows one; these need the integration key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from turnstiled.sim.wire import HttpError, Request

if TYPE_CHECKING:
    from turnstiled.sim.ticketing import TicketingEmulator, TicketingState

MIN_VERSION = (3, 0, 0)
NO_RESOURCE = {"error": "There is presently no resource with the given URI."}
UNAUTHENTICATED = {"message": "Your request could not be authenticated."}
RESTRICTED = {"message": "You are restricted from accessing this resource."}
UPGRADE = {"error": "Please upgrade your client to complete this request"}
NO_TOKEN = {"error": "The provided code does not belong to any event token"}


def _version(text: str | None) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in (text or "").strip().split("."))
    except ValueError:
        return ()
    return (*parts, 0, 0, 0)[:3] if parts else ()


def token_view(token: dict[str, Any]) -> dict[str, Any]:
    """An admission token as the API shows it (without its key)."""
    return {k: token[k] for k in ("self", "code", "global", "sections")}


class TokenApi:
    """The token endpoints of a TickeTing emulator, and the key check of every route."""

    def __init__(self, emu: TicketingEmulator) -> None:
        self.emu = emu

    @property
    def state(self) -> TicketingState:
        return self.emu.state

    def routes(self) -> list[tuple[str, str, Callable[[Request], Any]]]:
        """(method, path below the base path, handler) of the token endpoints."""
        return [("GET", "/tokens/{code}", self._exchange),
                ("POST", "/events/{event}/tokens", self._post_token),
                ("GET", "/events/{event}/tokens", self._list_tokens),
                ("GET", "/events/{event}/tokens/{token}", self._token_detail),
                ("PUT", "/events/{event}/tokens/{token}", self._change_token),
                ("DELETE", "/events/{event}/tokens/{token}", self._invalidate_token)]

    # -- checks ------------------------------------------------------------
    def _client(self, req: Request) -> None:
        if _version(req.headers.get("x-client-version")) < MIN_VERSION:
            raise HttpError(412, UPGRADE)

    def _caller(self, req: Request) -> dict[str, Any]:
        """The caller's key: 412 for an old client, 401 without a key, 403 for an unknown one."""
        self._client(req)
        key = req.headers.get("x-api-key", "").strip()
        if not key:
            raise HttpError(401, UNAUTHENTICATED)
        who = self.state.keys.get(key)
        if who is None:
            raise HttpError(403, RESTRICTED)
        return who

    def key(self, req: Request, *, admin: bool = False) -> dict[str, Any]:
        """The caller's key, allowed on the path's event (404 for an unknown event)."""
        who = self._caller(req)
        if req.params["event"] not in self.state.events:
            raise HttpError(404, NO_RESOURCE)
        if not who["admin"] and (admin or who["event"] != req.params["event"]):
            raise HttpError(403, RESTRICTED)
        return who

    def _sections(self, req: Request, event: str) -> list[str]:
        """The body's ``sections``: 400 unless a non-empty list of sections of *event*."""
        s = self.state
        sections = req.body.get("sections") if isinstance(req.body, dict) else None
        if not isinstance(sections, list) or not sections or \
                any(s.section_event.get(x) != event for x in sections):
            raise HttpError(400, {"error": "sections must list sections of this event"})
        return sections

    def _token(self, req: Request) -> dict[str, Any]:
        for t in self.state.tokens.values():
            if t["id"] == req.params["token"] and t["event"] == req.params["event"]:
                return t
        raise HttpError(404, NO_RESOURCE)

    # -- routes ------------------------------------------------------------
    def _exchange(self, req: Request) -> Any:
        if not self._caller(req)["admin"]:  # only the integration's own key exchanges codes
            raise HttpError(403, RESTRICTED)
        token = self.state.tokens.get(req.params["code"].upper())
        self.emu.record("token_exchange", code=req.params["code"], found=token is not None)
        if token is None:
            raise HttpError(404, NO_TOKEN)
        return {"key": token["key"], "event": f"/events/{token['event']}",
                "sections": list(token["sections"])}

    def _post_token(self, req: Request) -> Any:
        self.key(req, admin=True)
        sections = self._sections(req, req.params["event"])
        with self.emu.lock:
            return 201, self.state.issue_token(req.params["event"], sections, global_=False)

    def _list_tokens(self, req: Request) -> Any:
        self.key(req, admin=True)
        records, page = self.emu.paging(req)
        want = req.query.get("global")
        rows = [token_view(t) for t in self.state.tokens.values()
                if t["event"] == req.params["event"]
                and (want is None or t["global"] == (want.lower() in ("true", "1")))]
        return self.emu.paged(rows, records, page)

    def _token_detail(self, req: Request) -> Any:
        self.key(req, admin=True)
        return token_view(self._token(req))

    def _own_token(self, req: Request, done: str) -> dict[str, Any]:
        """The token *req* names, if it may be changed (never the global one); under the lock."""
        t = self._token(req)
        if t["global"]:
            raise HttpError(409, {"error": f"The global token cannot be {done}"})
        return t

    def _change_token(self, req: Request) -> Any:
        self.key(req, admin=True)
        with self.emu.lock:
            t = self._own_token(req, "changed")
            sections = self._sections(req, t["event"])
            t["sections"] = list(sections)
            self.state.keys[t["key"]]["sections"] = set(sections)
            return token_view(t)

    def _invalidate_token(self, req: Request) -> Any:
        self.key(req, admin=True)
        with self.emu.lock:
            t = self._own_token(req, "invalidated")
            del self.state.tokens[t["code"]]
            self.state.keys.pop(t["key"], None)
            return token_view(t)
