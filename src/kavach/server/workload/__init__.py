"""Workload identities: CI jobs and pods sign in with their platform's OIDC token."""
