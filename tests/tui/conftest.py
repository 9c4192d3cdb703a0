import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))                              # fakes, tuitools
sys.path.insert(0, str(HERE.parent / "integration"))        # harness

# Snapshots are drawn in colour with event times in UTC, whatever the terminal running the tests says.
os.environ.pop("NO_COLOR", None)
os.environ["TZ"] = "UTC"
time.tzset()
