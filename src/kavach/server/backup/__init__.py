"""Backups of the server's database: a consistent snapshot out, an exact restore in.

A backup is a gzip-compressed tar: `manifest.json` first (format, schema revision, time,
database kind, tables with their columns, row counts and checksums, and the ids of the
keys the data needs, never a key), then one JSON-lines member per table in the order of
their foreign keys. Values are written in one form on both databases, so a backup of
SQLite restores into PostgreSQL and the other way round.
"""
