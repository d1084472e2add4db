"""`python -m rules_engine` runs the command line."""

from rules_engine.cli.app import main

main()
