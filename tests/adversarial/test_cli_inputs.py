"""Every bad input of issue 15 for `gradguard check` (tests/adversarial/cli_cases.py) is
handled: no hang, no traceback, the documented exit status, nothing lost or corrupted."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_cases import CASES
from harness import Harness, Scratch

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="uses /proc, FIFOs and Linux capabilities"
)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_input_is_handled(case):
    if case.needs_root and os.geteuid() != 0:
        pytest.skip("changes a file's owner: needs root (as in CI)")
    with Scratch() as directory:
        case.run(Harness(), directory)
