"""``python -m cyberun``: the same as the ``cyberun`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
