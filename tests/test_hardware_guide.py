"""hardware/: the wiring guide's pin map is the code's, and the udev rules cover the chips."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import fields
from pathlib import Path

from turnstiled.settings import HardwareSettings

HW = Path(__file__).resolve().parent.parent / "hardware"
CONFIG = HW.parent / "config" / "turnstiled.toml"
# BCM GPIO number -> physical pin on the 40-pin header
HEADER = {2: 3, 3: 5, 4: 7, 17: 11, 27: 13, 22: 15, 10: 19, 9: 21, 11: 23, 5: 29, 6: 31,
          13: 33, 19: 35, 26: 37, 14: 8, 15: 10, 18: 12, 23: 16, 24: 18, 25: 22, 8: 24,
          7: 26, 12: 32, 16: 36, 20: 38, 21: 40}
ROW = re.compile(r"^\| (?P<part>[^|]+?) \| (?P<eg>e\.g\. )?GPIO(?P<gpio>\d+) "
                 r"\(header (?P<header>\d+)\) \| `(?P<key>\w+_pin)`", re.M)


def guide_pins() -> dict[str, tuple[int, int, bool]]:
    text = (HW / "README.md").read_text()
    return {m["key"]: (int(m["gpio"]), int(m["header"]), bool(m["eg"]))
            for m in ROW.finditer(text)}


def test_pin_map_in_the_guide_is_the_codes_default():
    pins = guide_pins()
    defaults = {f.name: f.default for f in fields(HardwareSettings) if f.name.endswith("_pin")}
    assert set(pins) == set(defaults)  # every pin the code knows, and no other
    config = CONFIG.read_text()
    for key, (gpio, header, example) in pins.items():
        assert HEADER[gpio] == header, f"{key}: GPIO{gpio} is header pin {HEADER[gpio]}"
        if defaults[key] is None:  # optional part: the guide's example is the config's
            assert example, f"{key} has no default: the guide must say 'e.g.'"
            assert re.search(rf"^# {key} = {gpio}$", config, re.M), key
        else:
            assert not example and defaults[key] == gpio, key
            assert re.search(rf"^{key} = {gpio}$", config, re.M), key


def test_wiring_diagram_shows_the_same_pins():
    svg = ET.parse(HW / "wiring-one-lane.svg").getroot()
    text = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    for key, (gpio, header, _) in guide_pins().items():
        assert f"GPIO{gpio} (pin {header})" in text, key
    for must in ("COM", "NO", "NC", "330 Ω", "PC817", "GND", "3.3 V", "ACTIVE-LOW",
                 "boots", "gpio=17=op,dh"):
        assert must in text, must


def test_udev_rules_cover_the_common_usb_serial_chips_and_the_uart():
    rules = (HW / "99-turnstiled.rules").read_text()
    lines = [ln for ln in rules.splitlines() if ln and not ln.startswith("#")]
    for vendor in ("0403", "067b", "1a86", "10c4"):  # FTDI, Prolific, CH340, CP210x
        assert any(f'ATTRS{{idVendor}}=="{vendor}"' in ln and 'GROUP="dialout"' in ln
                   for ln in lines), vendor
    assert any("ttyAMA0" in ln and 'GROUP="dialout"' in ln for ln in lines)
    assert any('SUBSYSTEM=="input"' in ln and 'GROUP="input"' in ln for ln in lines)
    assert any('SUBSYSTEM=="gpio"' in ln and 'GROUP="gpio"' in ln for ln in lines)
    for ln in lines:  # every rule is KEY op "value" pairs separated by commas
        assert re.fullmatch(r'(\s*[A-Z]+(\{\w+\})?(==|\+=|=)"[^"]*"\s*,?)+', ln), ln
