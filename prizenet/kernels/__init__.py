"""Compiled training kernels, one folder per backend: ``numba/`` for the CPU (the papers'
per-rating SGD, one rating at a time). Each model's math stays in its own file's
docstring (``prizenet/models/``); a kernel file holds only the loop."""
