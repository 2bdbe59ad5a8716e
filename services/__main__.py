"""``python -m services``: the same command line as the ``tend`` console script."""

from services.cli import main

main(prog_name="tend")
