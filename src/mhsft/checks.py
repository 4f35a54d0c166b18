"""The result type shared by the SwanLab preflight and `mhsft doctor`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One check: `status` is ok | warn | fail; `fix` says what to do when it is not ok."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def bounded(name: str, fn: Callable[[], list[Check]], timeout: float) -> list[Check]:
    """Run `fn` in a daemon thread; if it has not finished after `timeout` s, report that as a failure."""
    result: list[list[Check]] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except Exception as exc:  # a check that crashes is reported, not raised
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if result:
        return result[0]
    if failure:
        return [Check(name, FAIL, f"check crashed: {type(failure[0]).__name__}: {failure[0]}")]
    return [Check(name, FAIL, f"no answer within {timeout:g} s", "check the network, or raise the timeout")]
