"""Benchmarks: real server processes on this machine, figures printed and saved as JSON."""
