"""The documentation site builds with --strict, and the CLI page documents every option."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netgear.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("NetGear", "recv_packet", "Packet", "HubSnapshot", "Synthetic", "Montage", "Recorder", "LiveStats"):
        assert name in api, f"{name} missing from the generated API reference"


def test_cli_page_documents_every_option():
    page = (ROOT / "docs" / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        assert f"## `netgear {name}`" in page
        for action in command._actions:
            for option in action.option_strings:
                if option.startswith("--") and option not in ("--help", "--verbose", "--quiet"):
                    assert f"`{option}" in page, f"netgear {name} {option} is not documented in docs/cli.md"
