"""What every listener needs, bound once per app: settings, the store and the clock."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.config import Settings
from models.session import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Clock = field(default_factory=Clock)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("peerlearn"))
    # Set when the process stops: work that can wait in the database (an owed post) is not started any more.
    stopping: threading.Event = field(default_factory=threading.Event)
