"""`gradguard` with test hooks, chosen by environment variables (set by harness.Harness):

GG_TEST_CRASH_RULE=1     add rule GG999, which raises on every unit it checks
GG_TEST_SLOW=SECONDS     each `Analyzer.check` first sleeps (time to kill the run mid-way)
GG_TEST_SLOW_FIX=SECONDS each `Analyzer.fix` sleeps after computing the fixed text, before
                         the file is written (time to edit or delete the file meanwhile)
GG_TEST_READY=PATH       touched when a check or fix starts sleeping
GG_TEST_FORK_LIMIT=N     fork() fails with EAGAIN after N calls, as with RLIMIT_NPROC (which
                         root is exempt from): a run that forks once per requested job fails
                         instead of starting a thousand processes
"""

import os
import sys
import time
from pathlib import Path


def _ready() -> None:
    marker = os.environ.get("GG_TEST_READY")
    if marker:
        Path(marker).touch()


def install() -> None:
    from gradguard.engine import analyzer as analyzer_module
    from gradguard.engine import rule as rule_module

    if os.environ.get("GG_TEST_CRASH_RULE"):

        class AlwaysCrashes(rule_module.Rule):
            code = "GG999"
            name = "always-crashes"
            summary = "A rule with a bug, to check that the others keep working."
            message = "never shown"
            explanation = "Used only by the adversarial tests."

            def check(self, unit):
                raise RuntimeError("this rule is broken on purpose")

        rule_module.all_rules()["GG999"] = AlwaysCrashes

    slow = float(os.environ.get("GG_TEST_SLOW", "0") or 0)
    if slow:
        original_check = analyzer_module.Analyzer.check

        def slow_check(self, *args, **kwargs):
            _ready()
            time.sleep(slow)
            return original_check(self, *args, **kwargs)

        analyzer_module.Analyzer.check = slow_check

    slow_fix = float(os.environ.get("GG_TEST_SLOW_FIX", "0") or 0)
    if slow_fix:
        original_fix = analyzer_module.Analyzer.fix

        def slow_fix_method(self, *args, **kwargs):
            result = original_fix(self, *args, **kwargs)
            _ready()
            time.sleep(slow_fix)
            return result

        analyzer_module.Analyzer.fix = slow_fix_method

    fork_limit = int(os.environ.get("GG_TEST_FORK_LIMIT", "0") or 0)
    if fork_limit:
        import errno

        original_fork = os.fork
        count = [0]

        def limited_fork():
            count[0] += 1
            if count[0] > fork_limit:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable (test fork limit)")
            return original_fork()

        os.fork = limited_fork


if __name__ == "__main__":
    install()
    from gradguard.cli import main

    sys.exit(main(sys.argv[1:]))
