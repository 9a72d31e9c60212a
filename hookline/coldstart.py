"""A function's imports with the cyclic garbage collector paused (B4).

A cold start creates several hundred thousand objects that live as long as the process: modules,
classes, functions, botocore's and pydantic's tables. Whenever the collector's thresholds trip
while they are being made, a collection walks them and finds nothing to free; for a handler
that is up to a sixth of its import's CPU time (B4). ``imports()`` pauses the collector for the
imports, then freezes what they made (``gc.freeze``: later collections skip those objects) and
resumes it, so collection works as before for everything the requests create.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def imports() -> Iterator[None]:
    """Wrap a handler module's imports: ``with coldstart.imports(): import ...``."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
