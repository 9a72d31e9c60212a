"""The one Logger, Tracer and Metrics of the service (powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="hookline")
tracer = Tracer(service="hookline")
metrics = Metrics(namespace="Hookline", service="hookline")
