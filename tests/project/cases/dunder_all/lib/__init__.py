from .impl import Layer, helper

__all__ = ["Layer"]
