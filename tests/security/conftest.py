"""Key folders for the security tests: a hub, trusted servers cam1 and cam2, a rogue key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from netgear import keys


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    root = tmp_path / "keys"
    for name in ("hub", "cam1", "cam2", "rogue"):
        keys.generate(root, name)
    allowed = root / "authorized"
    allowed.mkdir()
    for name in ("cam1", "cam2"):
        shutil.copy(root / f"{name}.key", allowed / f"{name}.key")
    return root

