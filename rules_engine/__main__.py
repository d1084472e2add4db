"""`python -m rules_engine` runs the command line."""

from rules_engine.cli import main

main()
