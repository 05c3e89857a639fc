"""The service's structured log: one JSON object per line on stdout (what a log pipeline and the
harness's pod logs read)."""

from __future__ import annotations

import json
import time
from typing import Any


def log_json(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "ts": round(time.time(), 3), **fields}), flush=True)
