"""Write the example recordings in this folder from the emulator's built-in workflows.

    python tests/recordings/make_examples.py

Each is a ``cyberun-recording`` (JSON Lines, version 1; the format is
described in ``cyberun/testing/_recording.py`` and the testing guide) of one
task followed through the SDK, its first stream carrying the whole history.
"""

from __future__ import annotations

from pathlib import Path

import cyberun
from cyberun.testing import CyberunEmulator, RecordingTransport
from cyberun.transports import UrllibTransport

HERE = Path(__file__).parent
EXAMPLES = {"text-to-image": {"prompt": "a fox", "steps": 4}, "always-fails": {}}


def main() -> None:
    for workflow, parameters in EXAMPLES.items():
        with CyberunEmulator(time_scale=0.01, sse_history="full") as server:
            transport = RecordingTransport(UrllibTransport(), HERE / f"{workflow}.jsonl")
            with cyberun.Client(
                server.api_key, base_url=server.base_url, transport=transport
            ) as client:
                try:
                    client.run(workflow, parameters).wait()
                except cyberun.TaskFailed:
                    pass
        print(f"wrote {workflow}.jsonl")


if __name__ == "__main__":
    main()
