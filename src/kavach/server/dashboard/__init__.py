"""The web dashboard: server-rendered pages over the same use cases and the one gate."""
