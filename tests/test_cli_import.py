"""turnstilectl import: a --replace that would empty the local list must be asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnstiled import cli
from turnstiled.cache import Cache


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "turnstiled.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}/data"\n'
                    f'control_socket = "{tmp_path}/ctl.sock"\n')
    (tmp_path / "list.csv").write_text("barcode;name\nG-1;Ann\nG-2;Bo\n")
    (tmp_path / "empty.csv").write_text("barcode;name\n")
    (tmp_path / "empty.json").write_text("[]")
    return path


def local_count(tmp_path: Path) -> int:
    cache = Cache(tmp_path / "data" / "cache.db", readonly=True)
    try:
        return sum(s["tickets"] for s in cache.sources() if s["source"] == "local")
    finally:
        cache.close()


@pytest.mark.parametrize("empty", ["empty.csv", "empty.json"])
def test_replace_with_nothing_is_refused_unless_allowed(conf, capsys, tmp_path, empty):
    assert cli.main(["--config", str(conf), "import", str(tmp_path / "list.csv")]) == 0
    assert local_count(tmp_path) == 2
    capsys.readouterr()
    code = cli.main(["--config", str(conf), "import", "--replace", str(tmp_path / empty)])
    err = capsys.readouterr().err
    assert code == 2 and "--allow-empty" in err and len(err.splitlines()) == 1
    assert local_count(tmp_path) == 2
    code = cli.main(["--config", str(conf), "import", "--replace", "--allow-empty",
                     str(tmp_path / empty)])
    assert code == 0 and local_count(tmp_path) == 0


def test_adding_an_empty_file_is_harmless(conf, capsys, tmp_path):
    assert cli.main(["--config", str(conf), "import", str(tmp_path / "empty.csv")]) == 0
    assert "imported 0" in capsys.readouterr().out
