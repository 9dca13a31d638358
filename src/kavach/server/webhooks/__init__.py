"""Webhooks: HTTPS endpoints that receive an organization's or environment's events."""
