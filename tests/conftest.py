import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the checkout's sources win over any installed copy
sys.path.insert(0, str(ROOT / "server"))
os.environ.setdefault("GRADGUARD_TESTING", "1")
# the tests test the sources (some patch engine functions); tests/test_native.py compares the compiled
# engine (scripts/build-native) with them, and GRADGUARD_NATIVE=1 runs the suite on it
os.environ.setdefault("GRADGUARD_NATIVE", "0")
