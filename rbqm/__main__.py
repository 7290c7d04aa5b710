"""``python -m rbqm`` runs the command line."""

from rbqm.cli import main

main()
