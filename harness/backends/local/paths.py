"""Where a run's on-disk state lives (ledgers, emptyDir directories).

A leaf module: cleanup and the kubelet's volumes both need it, and neither may import the other.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = Path(os.environ.get("GAUNTLET_LOCAL_STATE", "/tmp/gauntlet-local"))
