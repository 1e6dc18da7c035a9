"""Key codes to text for keyboard-wedge scanners: US, UK, DE and FR layouts. Pure.

A scanner in HID mode "types" the barcode as key presses in the layout it
is configured for; :class:`KeyDecoder` turns real ``evdev.InputEvent``
values back into text, tracking shift, caps lock, AltGr and Ctrl, and
completes a code on Enter, keypad Enter or Tab. Ctrl+] (the key at
``KEY_RIGHTBRACE``; how scanners send the GS1 separator GS) and Alt+keypad
decimal codes (Alt+029) are understood in every layout. The dead keys
(circumflex, acute and grave on DE; circumflex and diaeresis on FR)
combine with the next key as on the Windows hosts scanners are set up
for: dead key + space gives the accent itself, + a vowel the accented
letter, + anything else both.
"""

from __future__ import annotations

import unicodedata

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
           E.KEY_2: "²", E.KEY_3: "³", E.KEY_M: "µ"},
    "fr": {E.KEY_2: "~", E.KEY_3: "#", E.KEY_4: "{", E.KEY_5: "[", E.KEY_6: "|",
           E.KEY_7: "`", E.KEY_8: "\\", E.KEY_9: "^", E.KEY_0: "@", E.KEY_MINUS: "]",
           E.KEY_EQUAL: "}", E.KEY_E: "€", E.KEY_RIGHTBRACE: "¤"},
}

# Keys whose unshifted and shifted characters are dead accents (not with AltGr).
_DEAD: dict[str, frozenset[int]] = {
    "us": frozenset(), "uk": frozenset(),
    "de": frozenset({E.KEY_GRAVE, E.KEY_EQUAL}),
    "fr": frozenset({E.KEY_LEFTBRACE}),
}
_COMBINING = {"^": "\u0302", "´": "\u0301", "`": "\u0300", "¨": "\u0308"}

LAYOUTS: dict[str, dict[int, tuple[str, str]]] = {"us": _US, "uk": _UK, "de": _DE, "fr": _FR}

KEYPAD = {E.KEY_KP0: "0", E.KEY_KP1: "1", E.KEY_KP2: "2", E.KEY_KP3: "3", E.KEY_KP4: "4",
          E.KEY_KP5: "5", E.KEY_KP6: "6", E.KEY_KP7: "7", E.KEY_KP8: "8", E.KEY_KP9: "9",
          E.KEY_KPDOT: ".", E.KEY_KPMINUS: "-", E.KEY_KPPLUS: "+", E.KEY_KPASTERISK: "*",
          E.KEY_KPSLASH: "/"}
TERMINATORS = frozenset({E.KEY_ENTER, E.KEY_KPENTER, E.KEY_TAB})
SHIFT = frozenset({E.KEY_LEFTSHIFT, E.KEY_RIGHTSHIFT})
CTRL = frozenset({E.KEY_LEFTCTRL, E.KEY_RIGHTCTRL})
# Like the serial Framer's max_frame: keep one character more than any
# frame may hold, so an endless code is still seen to be too long.
MAX_CODE = 513


class KeyDecoder:
    """Turns one scanner's key events into completed barcodes."""

    def __init__(self, layout: str = "us") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown keyboard layout {layout!r} "
                             f"(known: {', '.join(sorted(LAYOUTS))})")
        self.layout = layout
        self.keys = LAYOUTS[layout]
        self.altgr_keys = _ALTGR[layout]
        self.dead_keys = _DEAD[layout]
        self.reset()

    def reset(self) -> None:
        """Forget modifiers, caps lock and a half-typed code (the device was lost)."""
        self.shift: set[int] = set()
        self.ctrl: set[int] = set()
        self.altgr = False
        self.alt = False
        self.caps = False
        self.alt_digits = ""
        self.dead = ""
        self.dropped = False
        self.buffer: list[str] = []

    def feed(self, event: InputEvent) -> str | None:
        """Take one event; the barcode text when it ends a code, else None."""
        if event.type == E.EV_SYN and event.code == E.SYN_DROPPED:
            # The kernel lost events: the code being typed is corrupt, and
            # the modifier state may be wrong. Discard up to the next end.
            caps = self.caps
            self.reset()
            self.caps, self.dropped = caps, True
            return None
        if event.type != E.EV_KEY:
            return None
        code, down = event.code, event.value in (1, 2)  # 2: autorepeat
        if code in SHIFT:
            (self.shift.add if down else self.shift.discard)(code)
        elif code in CTRL:
            (self.ctrl.add if down else self.ctrl.discard)(code)
        elif code == E.KEY_RIGHTALT:
            self.altgr = down
        elif code == E.KEY_LEFTALT:
            self.alt = down
            if not down and self.alt_digits:
                self._type(_alt_code(self.alt_digits))
                self.alt_digits = ""
        elif not down:
            pass
        elif code == E.KEY_CAPSLOCK:
            if event.value == 1:
                self.caps = not self.caps
        elif code in TERMINATORS:
            return self._end()
        else:
            self._key(code)
        return None

    def _end(self) -> str | None:
        self._type("")  # a dead key left pending stands for itself
        text, dropped = "".join(self.buffer), self.dropped
        self.buffer, self.dropped = [], False
        return text if text and not dropped else None

    def _key(self, code: int) -> None:
        if self.alt and code in KEYPAD and KEYPAD[code].isdigit():
            self.alt_digits += KEYPAD[code]
        elif self.ctrl:
            if code == E.KEY_RIGHTBRACE:
                self._type("\x1d")
        elif code in KEYPAD:
            self._type(KEYPAD[code])
        elif self.altgr:
            self._type(self.altgr_keys.get(code, ""))
        elif code in self.keys:
            plain, shifted = self.keys[code]
            ch = shifted if self.shift else plain
            if self.caps and ch.isalpha():
                ch = ch.swapcase()
            if code in self.dead_keys:
                if self.dead:  # two dead keys: both accents, as typed
                    self._type(ch)
                else:
                    self.dead = ch
                return
            self._type(ch)

    def _type(self, ch: str) -> None:
        """Add *ch* to the code, combined with a pending dead accent."""
        if self.dead:
            accent, self.dead = self.dead, ""
            if ch == " ":
                ch = accent
            else:
                composed = unicodedata.normalize("NFC", ch + _COMBINING[accent]) if ch else ""
                ch = composed if len(composed) == 1 else accent + ch
        if ch and len(self.buffer) < MAX_CODE:
            self.buffer.append(ch)


def _alt_code(digits: str) -> str:
    """The character Alt+keypad *digits* types on Windows (Alt+029 is GS)."""
    n = int(digits) % 256
    if n < 0x80:
        return chr(n)
    # With a leading zero: the ANSI code page; without: the OEM one.
    return bytes((n,)).decode("cp1252" if digits.startswith("0") else "cp437", "ignore")
