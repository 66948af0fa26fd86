import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the checkout's sources win over any installed copy
sys.path.insert(0, str(ROOT / "server"))
os.environ.setdefault("GRADGUARD_TESTING", "1")
# the CLI's result cache stays out of the tests (and of the checkout): tests/test_cache.py turns it on
os.environ.setdefault("GRADGUARD_NO_CACHE", "1")
