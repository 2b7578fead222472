"""``python -m keel.cli``: the same as the ``keel`` command."""

from keel.cli import main

main()
