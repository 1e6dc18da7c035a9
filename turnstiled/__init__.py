"""turnstiled: the firmware daemon of a ticket turnstile."""

import sys

# httpx imports its command-line client (httpx._main: click and pygments)
# whenever those are installed; no gate runs it, and it cost ~1.9 MB of RSS
# in each of the gate's two processes (scripts/bench memory). A None entry
# makes that one import fail as if they were missing, which httpx expects
# (only its `httpx` command would then say so). Here, before any module of
# this package can import httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
