"""``python -m ingest.cli``: the same as the ``ct-ingest`` command."""

from ingest.cli import main

main()
