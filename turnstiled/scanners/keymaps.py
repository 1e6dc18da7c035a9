"""Key codes to text for keyboard-wedge scanners: US, UK, DE and FR layouts. Pure.

A scanner in HID mode "types" the barcode as key presses in the layout it
is configured for; :class:`KeyDecoder` turns real ``evdev.InputEvent``
values back into text, tracking shift, caps lock, AltGr and Ctrl, and
completes a code on Enter or Tab. Ctrl+] (the GS control character, as
scanners send the GS1 separator) and Alt+keypad decimal codes (Alt+029)
are understood in every layout.
"""

from __future__ import annotations

from evdev import InputEvent, ecodes

E = ecodes

# (plain, shifted) per key; letters are filled in below.
_US: dict[int, tuple[str, str]] = {
    E.KEY_1: ("1", "!"), E.KEY_2: ("2", "@"), E.KEY_3: ("3", "#"), E.KEY_4: ("4", "$"),
    E.KEY_5: ("5", "%"), E.KEY_6: ("6", "^"), E.KEY_7: ("7", "&"), E.KEY_8: ("8", "*"),
    E.KEY_9: ("9", "("), E.KEY_0: ("0", ")"), E.KEY_MINUS: ("-", "_"),
    E.KEY_EQUAL: ("=", "+"), E.KEY_LEFTBRACE: ("[", "{"), E.KEY_RIGHTBRACE: ("]", "}"),
    E.KEY_BACKSLASH: ("\\", "|"), E.KEY_SEMICOLON: (";", ":"),
    E.KEY_APOSTROPHE: ("'", '"'), E.KEY_GRAVE: ("`", "~"), E.KEY_COMMA: (",", "<"),
    E.KEY_DOT: (".", ">"), E.KEY_SLASH: ("/", "?"), E.KEY_SPACE: (" ", " "),
    E.KEY_102ND: ("\\", "|"),
}
for _c in "abcdefghijklmnopqrstuvwxyz":
    _US[getattr(E, f"KEY_{_c.upper()}")] = (_c, _c.upper())

_UK = {**_US,
       E.KEY_2: ("2", '"'), E.KEY_3: ("3", "£"), E.KEY_APOSTROPHE: ("'", "@"),
       E.KEY_BACKSLASH: ("#", "~"), E.KEY_GRAVE: ("`", "¬"), E.KEY_102ND: ("\\", "|")}

_DE = {**_US,
       E.KEY_Y: ("z", "Z"), E.KEY_Z: ("y", "Y"),
       E.KEY_2: ("2", '"'), E.KEY_3: ("3", "§"), E.KEY_6: ("6", "&"), E.KEY_7: ("7", "/"),
       E.KEY_8: ("8", "("), E.KEY_9: ("9", ")"), E.KEY_0: ("0", "="),
       E.KEY_MINUS: ("ß", "?"), E.KEY_EQUAL: ("´", "`"), E.KEY_LEFTBRACE: ("ü", "Ü"),
       E.KEY_RIGHTBRACE: ("+", "*"), E.KEY_SEMICOLON: ("ö", "Ö"),
       E.KEY_APOSTROPHE: ("ä", "Ä"), E.KEY_GRAVE: ("^", "°"), E.KEY_BACKSLASH: ("#", "'"),
       E.KEY_COMMA: (",", ";"), E.KEY_DOT: (".", ":"), E.KEY_SLASH: ("-", "_"),
       E.KEY_102ND: ("<", ">")}

_FR = {**_US,
       E.KEY_Q: ("a", "A"), E.KEY_A: ("q", "Q"), E.KEY_W: ("z", "Z"), E.KEY_Z: ("w", "W"),
       E.KEY_SEMICOLON: ("m", "M"), E.KEY_M: (",", "?"),
       E.KEY_1: ("&", "1"), E.KEY_2: ("é", "2"), E.KEY_3: ('"', "3"), E.KEY_4: ("'", "4"),
       E.KEY_5: ("(", "5"), E.KEY_6: ("-", "6"), E.KEY_7: ("è", "7"), E.KEY_8: ("_", "8"),
       E.KEY_9: ("ç", "9"), E.KEY_0: ("à", "0"), E.KEY_MINUS: (")", "°"),
       E.KEY_EQUAL: ("=", "+"), E.KEY_LEFTBRACE: ("^", "¨"), E.KEY_RIGHTBRACE: ("$", "£"),
       E.KEY_APOSTROPHE: ("ù", "%"), E.KEY_BACKSLASH: ("*", "µ"), E.KEY_GRAVE: ("²", "²"),
       E.KEY_COMMA: (";", "."), E.KEY_DOT: (":", "/"), E.KEY_SLASH: ("!", "§"),
       E.KEY_102ND: ("<", ">")}

_ALTGR: dict[str, dict[int, str]] = {
    "us": {},
    "uk": {E.KEY_4: "€"},
    "de": {E.KEY_Q: "@", E.KEY_7: "{", E.KEY_8: "[", E.KEY_9: "]", E.KEY_0: "}",
           E.KEY_MINUS: "\\", E.KEY_RIGHTBRACE: "~", E.KEY_102ND: "|", E.KEY_E: "€",
           E.KEY_2: "²", E.KEY_3: "³"},
    "fr": {E.KEY_2: "~", E.KEY_3: "#", E.KEY_4: "{", E.KEY_5: "[", E.KEY_6: "|",
           E.KEY_7: "`", E.KEY_8: "\\", E.KEY_9: "^", E.KEY_0: "@", E.KEY_MINUS: "]",
           E.KEY_EQUAL: "}", E.KEY_E: "€"},
}

LAYOUTS: dict[str, dict[int, tuple[str, str]]] = {"us": _US, "uk": _UK, "de": _DE, "fr": _FR}

KEYPAD = {E.KEY_KP0: "0", E.KEY_KP1: "1", E.KEY_KP2: "2", E.KEY_KP3: "3", E.KEY_KP4: "4",
          E.KEY_KP5: "5", E.KEY_KP6: "6", E.KEY_KP7: "7", E.KEY_KP8: "8", E.KEY_KP9: "9",
          E.KEY_KPDOT: ".", E.KEY_KPMINUS: "-", E.KEY_KPPLUS: "+", E.KEY_KPASTERISK: "*",
          E.KEY_KPSLASH: "/"}
TERMINATORS = frozenset({E.KEY_ENTER, E.KEY_KPENTER, E.KEY_TAB})
SHIFT = frozenset({E.KEY_LEFTSHIFT, E.KEY_RIGHTSHIFT})
CTRL = frozenset({E.KEY_LEFTCTRL, E.KEY_RIGHTCTRL})
MAX_CODE = 4096


class KeyDecoder:
    """Turns one scanner's key events into completed barcodes."""

    def __init__(self, layout: str = "us") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown keyboard layout {layout!r} "
                             f"(known: {', '.join(sorted(LAYOUTS))})")
        self.layout = layout
        self.keys = LAYOUTS[layout]
        self.altgr_keys = _ALTGR[layout]
        self.shift: set[int] = set()
        self.ctrl: set[int] = set()
        self.altgr = False
        self.alt = False
        self.caps = False
        self.alt_digits = ""
        self.buffer: list[str] = []

    def feed(self, event: InputEvent) -> str | None:
        """Take one event; the barcode text when it ends a code, else None."""
        if event.type != E.EV_KEY:
            return None
        code, down = event.code, event.value in (1, 2)
        if code in SHIFT:
            (self.shift.add if down else self.shift.discard)(code)
            return None
        if code in CTRL:
            (self.ctrl.add if down else self.ctrl.discard)(code)
            return None
        if code == E.KEY_RIGHTALT:
            self.altgr = down
            return None
        if code == E.KEY_LEFTALT:
            self.alt = down
            if not down and self.alt_digits:
                self._add(chr(int(self.alt_digits) % 256))
                self.alt_digits = ""
            return None
        if not down:
            return None
        if code == E.KEY_CAPSLOCK:
            if event.value == 1:
                self.caps = not self.caps
            return None
        if code in TERMINATORS:
            text, self.buffer = "".join(self.buffer), []
            return text if text else None
        self._add(self._char(code))
        return None

    def _char(self, code: int) -> str:
        if self.alt and code in KEYPAD and KEYPAD[code].isdigit():
            self.alt_digits += KEYPAD[code]
            return ""
        if self.ctrl and code == E.KEY_RIGHTBRACE:
            return "\x1d"
        if self.ctrl:
            return ""
        if code in KEYPAD:
            return KEYPAD[code]
        if self.altgr:
            return self.altgr_keys.get(code, "")
        pair = self.keys.get(code)
        if pair is None:
            return ""
        ch = pair[1] if self.shift else pair[0]
        if self.caps and ch.isalpha():
            ch = ch.swapcase()
        return ch

    def _add(self, ch: str) -> None:
        if ch and len(self.buffer) <= MAX_CODE:
            self.buffer.append(ch)

    def reset(self) -> None:
        """Forget modifiers and a half-typed code (after the device was lost)."""
        self.shift.clear()
        self.ctrl.clear()
        self.altgr = self.alt = False
        self.alt_digits = ""
        self.buffer = []
