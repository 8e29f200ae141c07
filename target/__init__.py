"""The boardtrace agent: Python >= 3.8 standard library and ctypes only."""

VERSION = "0.1.0"
