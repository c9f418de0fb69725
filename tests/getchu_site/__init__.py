"""An offline, deterministic mock of www.getchu.com for the scraping tests (spec: ../shared/research/getchu.md §7)."""

from .images import LIMITS
from .server import DEFAULT_ROBOTS, MockGetchu

__all__ = ["DEFAULT_ROBOTS", "LIMITS", "MockGetchu"]
