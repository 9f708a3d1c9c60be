"""``python -m combiner ...``: the command line, also as a module, so that ``torchrun -m combiner
...`` can start it on several processes (see ``docs/distributed.md``)."""

import sys

from combiner.cli import main

if __name__ == "__main__":
    sys.exit(main())
