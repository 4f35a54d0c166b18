"""Shared test fixtures: an isolated working folder and environment, and a fake `swift` on PATH (helpers live in
`tests/support/`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from support.environment import TESTS, base_env
from support.running import FakeSwift


def pytest_configure(config: pytest.Config) -> None:
    """Undo an inherited "ignore" of SIGINT and SIGQUIT. A non-interactive shell starts a background job (`bash
    .ci/run &`) with both ignored, exec passes that on, and Python then leaves SIGINT ignored: an mhsft started by
    the tests would not see their Ctrl-C, as it sees a user's at a terminal."""
    for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGQUIT, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, handler)


@pytest.fixture
def fake_swift(tmp_path: Path) -> FakeSwift:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "swift"
    support = TESTS / "support"
    script.write_text(
        f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(support)!r})\n"
        f"runpy.run_path({str(support / 'fake_swift.py')!r}, run_name='__main__')\n"
    )
    script.chmod(0o755)
    return FakeSwift(bin_dir, tmp_path / "swift-calls.jsonl")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, made current, with HOME pointing inside tmp."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def env(tmp_path: Path, fake_swift: FakeSwift) -> dict[str, str]:
    """Environment for `mhsft` subprocesses: isolated HOME, the fake swift first on PATH."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    e = base_env(home)
    e["PATH"] = f"{fake_swift.bin_dir}{os.pathsep}{e.get('PATH', '')}"
    e["FAKE_SWIFT_LOG"] = str(fake_swift.log)
    e["MHSFT_NO_DATA_CHECK"] = "1"  # the gate runs the real ms-swift; tests of it use real fixtures
    return e
