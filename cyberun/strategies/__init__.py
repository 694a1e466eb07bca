"""How to follow a task and get its output: the follower, its driver, results.

The client picks what to call; strategies use the endpoint layer only and
never a concrete transport.
"""

from ._common import Control
from .driver import drive, follow_events, settle
from .follow import Follower, Outcome, StreamSettings
from .results import Downloader, output_names, safe_file_name

__all__ = [
    "Control",
    "Downloader",
    "Follower",
    "Outcome",
    "StreamSettings",
    "drive",
    "follow_events",
    "output_names",
    "safe_file_name",
    "settle",
]
