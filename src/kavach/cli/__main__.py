"""`python -m kavach.cli`: the same as the `kavach` console script."""

from kavach.cli.entry import run

run()
