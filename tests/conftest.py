from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test where it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """In-process tests run torch on one thread, as the tests' subprocesses do (OMP_NUM_THREADS=1): on CI's 2 cores
    two threads per process fight whatever else runs, and times stop being predictable."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
