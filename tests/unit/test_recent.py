"""The bounded map behind the server's caches."""

from __future__ import annotations

from kavach.server.recent import Recent


def test_putting_past_the_size_forgets_the_entry_put_longest_ago() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)  # put again: now the most recent
    recent.put("c", 4)
    assert (recent.get("a"), recent.get("b"), recent.get("c")) == (3, None, 4)
    assert "b" not in recent and "c" in recent
    assert recent["c"] == 4
