"""``python -m momentloc``."""

from momentloc.cli import main

main()
