"""The `kavach` command-line client; it talks to the server over HTTP only."""
