"""The private directory where worker processes keep their metric values for each other.

Nothing here imports prometheus_client: it decides how to store values when first
imported, so the directory must be named in the environment before that.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# prometheus_client's own variable: worker processes inherit it from the server's process.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_values() -> Iterator[str]:
    """Make a fresh private directory (0700) for this server's workers; remove it at the end.

    A new directory per server start, so no value of an earlier run or of another server
    is ever read, and one set by the environment is never trusted.
    """
    path = tempfile.mkdtemp(prefix="kavach-metrics-")
    previous = os.environ.get(MULTIPROCESS_DIR_ENV)
    os.environ[MULTIPROCESS_DIR_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        else:
            os.environ[MULTIPROCESS_DIR_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
