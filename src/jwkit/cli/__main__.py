"""``python -m jwkit.cli``."""

from jwkit.cli import main

main()
