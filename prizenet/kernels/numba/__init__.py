"""The CPU kernels, compiled by numba (``cache=True``: compiled once per install, then read
from disk): the interface of :mod:`prizenet.kernels`, one rating at a time."""

from .integrated import integrated
from .svd import svd
from .svdpp import svdpp
from .timesvdpp import timesvdpp

__all__ = ["integrated", "svd", "svdpp", "timesvdpp"]
