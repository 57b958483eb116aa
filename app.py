"""PeerLearn's entry point: `.venv/bin/python app.py [run|serve|migrate|…]` (see `--help`)."""

import sys

from bot.cli import main
from bot.config import load_environment

if __name__ == "__main__":
    load_environment()
    sys.exit(main())
