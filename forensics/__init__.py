"""forensics: find the line of a Go service that leaks database or network connections,
from a capture bundle alone."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# numpy asks the kernel for transparent huge pages on every large array (madvise). Our big
# arrays (the 10^7-row stacks table of a heap profile) are written once, front to back:
# huge pages save little TLB work there, while faulting them in can stall on compaction.
# Measured on a 2-vCPU VM: building the tables of a 500k-stack profile took 1.7 s instead
# of 2.3 s (system time halved) without it. NUMPY_MADVISE_HUGEPAGE is numpy's documented
# switch, read when numpy is imported: set only if numpy is not loaded yet and nobody set it.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
