"""Tests in a real Chromium: pages, accessibility (axe-core), sign-in through a real provider."""
