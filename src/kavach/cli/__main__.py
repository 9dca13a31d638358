"""`python -m kavach.cli`: the same as the `kavach` console script."""

from kavach.cli.main import run

run()
