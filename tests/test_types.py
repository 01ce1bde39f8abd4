"""The apps type-check: mypy with django-stubs and DRF's stubs, configured in pyproject.toml ([tool.mypy]),
over portal, stores, customers, campaigns, materials and the WeCom sandbox (not tests, migrations or
bench). The same check as ``make lint``, run here so CI (``make test``) runs it too.

mypy runs in a subprocess, as ``make lint`` runs it: its Django plugin imports the settings, which need
demo mode; the database URL is parsed there, never connected to. The incremental cache lives in
.mypy_cache/ (gitignored): about 20 s cold, a few seconds warm.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (requirements.txt installs it)")

ROOT = Path(__file__).resolve().parent.parent
TYPECHECK_ENV = {"XIAOER_DEMO": "1", "DATABASE_URL": "postgresql://typecheck@127.0.0.1:1/none"}  # as the Makefile


def test_apps_type_check_clean():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env={**os.environ, **TYPECHECK_ENV},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy found problems (make lint shows the same):\n{result.stdout}{result.stderr}"
