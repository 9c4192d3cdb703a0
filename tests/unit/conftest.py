"""Fixtures shared by the GPU detection tests."""
import tempfile
from pathlib import Path

import pytest

FAKEBIN = Path(__file__).resolve().parent.parent / "fakebin"


@pytest.fixture
def fresh_gpu_state():
    """Detection caches NVML sessions and tool answers per process: start and end each test clean."""
    from afbox.gpu import usage as gpu_live
    from afbox.gpu import nvml as gpu_nvml
    gpu_live._cache.clear()
    gpu_nvml._sessions.clear()
    yield
    gpu_live._cache.clear()
    gpu_nvml._sessions.clear()


@pytest.fixture
def bindir(tmp_path):
    """A PATH directory holding only the named fakes (none: a host without the tools)."""
    def make(*tools: str) -> str:
        d = Path(tempfile.mkdtemp(prefix="bin-", dir=tmp_path))
        for tool in tools:
            (d / tool).symlink_to(FAKEBIN / tool)
        return str(d)
    return make
