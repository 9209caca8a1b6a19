"""Every package folder ships: a subpackage missing from pyproject breaks a non-editable install."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(fastrnn[\w.]*)"', re.search(r"^packages = \[(.*)\]", text, re.M).group(1)))
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fastrnn").rglob("__init__.py")}
    assert found <= listed, f"not listed in pyproject.toml: {sorted(found - listed)}"
    assert "fastrnn_cli" in listed and (ROOT / "cli" / "__init__.py").exists()
