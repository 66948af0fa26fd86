"""The gradient probe: run modules and autograd Functions with torch, in a sandboxed
subprocess, and report where gradients stop.

Nothing in this package imports torch except `runner.py`, which only ever runs in
the child process (with the user's interpreter).
"""

from __future__ import annotations

PROBE_SOURCE = "gradguard-probe"
