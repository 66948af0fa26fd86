"""gradguard: find the autograd mistakes that make PyTorch models silently fail to learn."""

__version__ = "0.1.0"
