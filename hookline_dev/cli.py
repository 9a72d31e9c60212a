"""The `hookline` command. `hookline local` runs the whole system on this machine."""

from __future__ import annotations

import argparse
import gc
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path


def _scale(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0-65535 (0 picks a free port)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser(
        "local",
        help="run API, dispatcher, retries and a request inspector in-process (no AWS, no Docker)",
        description="Run Hookline locally: the real handlers behind an API Gateway emulation, "
        "DynamoDB/Streams/SES through moto, a stream poller and a retry timer.",
    )
    local.add_argument("--port", type=_port, default=3000, help="HTTP port (default 3000)")
    local.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    local.add_argument(
        "--allow-private-targets",
        action="store_true",
        help="allow http:// and private/loopback webhook URLs (e.g. the /_inspect/ receiver)",
    )
    local.add_argument(
        "--time-scale",
        type=_scale,
        default=1.0,
        help="multiply retry waits (0.01 turns the 300 s first retry into 3 s)",
    )
    local.add_argument(
        "--auto-disable-scale",
        type=_scale,
        default=1.0,
        help="multiply the auto-disable window, AutoDisableAfterHours (0.001 turns 120 h into "
        "7.2 min), to try auto-disable locally",
    )
    local.add_argument(
        "--state-dir",
        "--data-dir",
        dest="state_dir",
        type=Path,
        default=Path(".hookline"),
        help="where communities, keys, webhooks, deliveries, the operator key and the mail "
        "outbox are kept across restarts (default .hookline, git-ignored)",
    )
    local.add_argument(
        "--reset",
        action="store_true",
        help="forget the stored state first (the operator key is kept)",
    )
    local.add_argument(
        "--log-level",
        default="WARNING",
        help="the functions' log level (the deployed template uses INFO; default WARNING)",
    )
    local.add_argument(
        "--access-log",
        action="store_true",
        help="print one line per request (tokens and credentials in paths masked)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "local":
        from hookline_dev.local import LocalOptions, LocalStack, run_until_signalled
        from hookline_dev.local.console import whole_lines

        # Metrics are off locally; powertools would still warn on every handler that had none.
        warnings.filterwarnings("ignore", message="No application metrics to publish")

        options = LocalOptions(
            host=args.host,
            port=args.port,
            allow_private_targets=args.allow_private_targets,
            time_scale=args.time_scale,
            auto_disable_scale=args.auto_disable_scale,
            data_dir=args.state_dir,
            persist=True,
            reset=args.reset,
            log_level=args.log_level,
            access_log=args.access_log,
        )
        try:
            with whole_lines():
                code = run_until_signalled(LocalStack(options, out=sys.stdout))
        except OSError as exc:
            print(f"hookline local: {exc}", file=sys.stderr)
            return 1
        # The process is about to drop moto's large object graph: a final collection of it
        # would hold the exit for seconds.
        gc.freeze()
        return code
    return 2


if __name__ == "__main__":
    sys.exit(main())
