"""``python -m genimg generate | bench | evaluate | train``: see ``genimg.cli``."""
import sys

from genimg.cli import main

if __name__ == "__main__":
    sys.exit(main())
