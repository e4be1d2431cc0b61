"""What the entry points share (launch/ -> driver/ -> actors/ -> ...): the command line and config loading, the
checks before a cluster starts, the cluster connection, the in-flight pipeline (sample -> judge refs), progress,
resume and recovery, the run directory, tracking, the report and image grids.

Importing this package first makes a local one-machine Ray cluster bind loopback: without
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray maps 127.0.0.1 to the eth0 address. Ray reads it when imported, so it
is set here, before any `import ray`; a job joining a real cluster (RAY_ADDRESS, run.ray_address) is left alone.
"""

import os as _os
import sys as _sys

if not _os.environ.get("RAY_ADDRESS") and not any(a.startswith("run.ray_address=") and a[16:] for a in _sys.argv):
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
