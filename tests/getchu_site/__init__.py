"""An offline, deterministic mock of www.getchu.com for the scraping tests: its pages, quirks and age gate."""

from .images import LIMITS
from .server import DEFAULT_ROBOTS, MockGetchu

__all__ = ["DEFAULT_ROBOTS", "LIMITS", "MockGetchu"]
