"""The core stays usable without Dagster: importing every nag_core module must not load it."""

import pkgutil
import subprocess
import sys

import nag_core


def test_core_modules_never_import_dagster():
    names = sorted(m.name for m in pkgutil.walk_packages(nag_core.__path__, "nag_core."))
    assert "nag_core.extraction" in names and "nag_core.near_dedup" in names
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({n!r})\n" for n in names) + \
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'nag_assets', 'sensors', 'resources')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
