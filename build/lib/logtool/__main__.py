"""`python -m logtool`: the same as the `logtool` command."""

from .cli import run

run()
