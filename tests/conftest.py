import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Nothing a test makes (environments and their Jupyter kernels, origin data) lands in the user's real
# data dir, where every facility of theirs would show it: tests that need their own set it themselves.
_DATA_HOME = tempfile.mkdtemp(prefix="afbox-test-data-")
os.chmod(_DATA_HOME, 0o755)  # xrootd drops to its own user when started as root
os.environ["XDG_DATA_HOME"] = _DATA_HOME
atexit.register(shutil.rmtree, _DATA_HOME, True)
