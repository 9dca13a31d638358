"""Rules for free text from clients, shared by every request schema (no web framework here)."""

from __future__ import annotations

# Free text from clients: anything but NUL, which PostgreSQL cannot store in text and no
# name, message or description needs. (Secret values are sealed before storage and may.)
NUL_FREE = r"^[^\x00]*$"
