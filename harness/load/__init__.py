"""Load engine: open-loop (coordinated-omission safe) and closed-loop load on locust.

spec = LoadSpec(target="http://127.0.0.1:8000", rate_rps=50, duration_s=30)
result = run_load(spec, Path("out"))        # writes out/load.json and out/records.npy
handle = start_load(spec, Path("out")); ...; result = handle.stop()
"""

from harness.load.result import Bucket, LoadResult, WindowStats
from harness.load.runner import LoadHandle, run_load, start_load
from harness.load.spec import LoadSpec, Shape, check_target

__all__ = [
    "Bucket",
    "LoadHandle",
    "LoadResult",
    "LoadSpec",
    "Shape",
    "WindowStats",
    "check_target",
    "run_load",
    "start_load",
]
