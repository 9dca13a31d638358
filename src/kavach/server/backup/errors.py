"""Why a backup or a restore was refused; messages name files, tables and key ids only."""

from __future__ import annotations

from kavach.server.errors import KavachError


class BackupError(KavachError):
    """A backup or restore cannot go ahead."""

    error_code = "backup_failed"


class FileExists(BackupError):
    """The backup file exists and --force was not given."""

    error_code = "file_exists"


class NotABackup(BackupError):
    """The file is not a Kavach backup, or it is damaged."""

    error_code = "not_a_backup"


class SchemaTooNew(BackupError):
    """The backup or database is at a schema revision this Kavach does not know."""

    error_code = "schema_too_new"


class TargetNotEmpty(BackupError):
    """The database to restore into already holds data."""

    error_code = "target_not_empty"


class KeysMissing(BackupError):
    """The server's keys lack key ids the backed-up data needs."""

    error_code = "keys_missing"


class NoDatabase(BackupError):
    """There is no database to back up, or its schema was never created."""

    error_code = "no_database"


class DatabaseFailed(BackupError):
    """The database could not be reached or refused the work (no statement or value shown)."""

    error_code = "database_unavailable"
