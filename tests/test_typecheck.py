"""The package type-checks: mypy over genoflow_dagster with the configuration in pyproject.toml.

CI runs only `make test`, so this is where a type error breaks the build (`make lint` runs the same
check). It skips only when mypy itself is not installed (it is in the dev extras).
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (pip install -e '.[dev]')")
def test_package_type_checks() -> None:
    # Configuration (files, strictness per package, untyped libraries) comes from [tool.mypy] in pyproject.toml.
    done = subprocess.run([sys.executable, "-m", "mypy", "genoflow_dagster"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"mypy found type errors:\n{done.stdout}{done.stderr}"
    assert "Success: no issues found" in done.stdout
