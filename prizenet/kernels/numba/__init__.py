"""The CPU kernels, compiled by numba (``cache=True``: compiled once per install, then read
from disk)."""
