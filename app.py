"""PeerLearn's entry point: `.venv/bin/python app.py [run|serve|migrate|…]` (see `--help`)."""

import sys

from bot.config import load_environment
from bot.runtime.cli import main

if __name__ == "__main__":
    load_environment()
    sys.exit(main())
