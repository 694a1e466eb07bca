"""How to follow a task and get its output: streaming, polling, results.

The client picks a strategy; strategies use the endpoint layer only and
never a concrete transport.
"""

from ._common import Control, DeadlineReached, Progression, Stopped
from .polling import follow_polling
from .results import Downloader, output_names, safe_file_name
from .streaming import StreamSettings, follow_stream

__all__ = [
    "Control",
    "DeadlineReached",
    "Downloader",
    "Progression",
    "Stopped",
    "StreamSettings",
    "follow_polling",
    "follow_stream",
    "output_names",
    "safe_file_name",
]
