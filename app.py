"""PeerLearn's entry point: `python app.py [run|serve|migrate|…]` (see `python app.py --help`)."""

import logging
import sys

from dotenv import load_dotenv

from bot.cli import main

if __name__ == "__main__":
    load_dotenv()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(main())
