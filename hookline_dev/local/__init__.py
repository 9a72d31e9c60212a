"""`hookline local`: the whole system in one process: in-memory tables with their streams and
an in-process delivery queue (storage.py, queue.py) in place of DynamoDB and SQS, moto as the
safety net for anything else that calls AWS.

Importing this package does not import moto; starting a LocalStack does.
"""

from hookline_dev.local.lambdas import LambdaContext, load_handler
from hookline_dev.local.scheduler import LocalRetryScheduler
from hookline_dev.local.stack import AttemptRecord, LocalOptions, LocalStack, run_until_signalled

__all__ = [
    "AttemptRecord",
    "LambdaContext",
    "LocalOptions",
    "LocalRetryScheduler",
    "LocalStack",
    "load_handler",
    "run_until_signalled",
]
