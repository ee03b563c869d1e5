"""The check both skipping-scan tests make: where the scan that skips batches and runs passes a
pickle, the scan that models every opcode passes it too, or finds it malformed (a memo get or a
MARK missing), as the unpickler would."""

from __future__ import annotations

import math
import pickle

from pymw_admin.wire import untrusted


def assert_skipping_passes_nothing_the_exact_scan_refuses(data: bytes) -> None:
    try:
        untrusted.scan(data)
    except pickle.UnpicklingError:
        return
    try:
        untrusted._scan(data, untrusted.DEFAULT_LIMITS, math.inf, skip_batches=False)
    except untrusted.LimitExceeded as exc:
        raise AssertionError(f"skipped past {exc.limit}: {data[:60]!r}") from None
    except pickle.UnpicklingError as exc:
        assert "malformed" in str(exc), data[:60]
