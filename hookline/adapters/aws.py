"""AWS clients for the adapters: botocore's low-level clients from one botocore session.

boto3 is not imported on a Lambda path: every adapter uses a plain client, which is all boto3's
``client()`` returns too, and importing boto3 adds its resource layer and s3transfer (with
multiprocessing) to every cold start for nothing (B4).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.config import Config

_creating = threading.Lock()


@lru_cache(maxsize=1)
def session() -> botocore.session.Session:
    """The process's botocore session (region and credentials from the environment), shared so
    that a second client reuses the endpoint data and credentials the first one loaded."""
    return botocore.session.get_session()


def client(service: str, config: Config | None = None) -> Any:
    """A new client of ``service``. The lock keeps two threads from using the session at once
    (botocore sessions are not thread-safe); callers cache the client."""
    with _creating:
        return session().create_client(service, config=config)
