"""Vendored files are exactly the releases VENDORED.md names."""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files

STATIC = files("kavach.server") / "static"


def test_htmx_is_the_recorded_release_with_its_eval_features_off_in_the_layout() -> None:
    recorded = (STATIC / "VENDORED.md").read_text(encoding="utf-8")
    row = next(line for line in recorded.splitlines() if line.startswith("| `htmx.min.js`"))
    expected = re.findall(r"`([0-9a-f]{64})`", row)
    assert expected == [hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest()]
    layout = (files("kavach.server") / "templates" / "dashboard" / "base.html").read_text()
    assert '"allowEval": false' in layout
    assert '"allowScriptTags": false' in layout
    assert '"historyCacheSize": 0' in layout
