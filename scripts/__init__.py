"""Developer and operator scripts (run them with the project's .venv)."""
