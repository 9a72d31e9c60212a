"""What `hookline local` prints: the banner, one line per delivery attempt (naming the webhook),
retry lines after the attempt they follow, failed API calls, all as whole lines that never
interleave across threads.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from hookline import clock
from hookline.observability import redact_text

if TYPE_CHECKING:
    from hookline_dev.local.apigw import HttpRequest, HttpResponse
    from hookline_dev.local.stack import AttemptRecord, LocalStack

#: A retry line waits at most this long for the attempt line it follows.
RETRY_LINE_HOLD_SECONDS = 3.0
_KEEP = 10_000


class LineWriter(io.TextIOBase):
    """A text stream that writes whole lines only, under a lock shared with its siblings: give
    sys.stdout and sys.stderr one each (same lock) and no two threads' lines ever merge."""

    def __init__(self, target: TextIO, lock: threading.Lock) -> None:
        self.target = target
        self.lock = lock
        self._local = threading.local()

    def _buffer(self) -> list[str]:
        buffer: list[str] | None = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = []
        return buffer

    def write(self, text: str) -> int:
        buffer = self._buffer()
        buffer.append(text)
        if "\n" in text:
            complete, _, rest = "".join(buffer).rpartition("\n")
            buffer[:] = [rest] if rest else []
            with self.lock:
                self.target.write(complete + "\n")
                self.target.flush()
        return len(text)

    def flush(self) -> None:
        buffer = self._buffer()
        with self.lock:
            if buffer:
                self.target.write("".join(buffer))
                buffer.clear()
            self.target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(getattr(self.target, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.target, "encoding", "utf-8"))


@contextlib.contextmanager
def whole_lines() -> Iterator[None]:
    """Inside: sys.stdout and sys.stderr write whole lines only, under one shared lock."""
    saved = (sys.stdout, sys.stderr)
    lock = threading.Lock()
    sys.stdout = LineWriter(saved[0], lock)  # type: ignore[assignment]
    sys.stderr = LineWriter(saved[1], lock)  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved


def _time() -> str:
    return clock.now_iso()[11:23]


class Console:
    """Formats and prints the stack's lines. `webhook_name(community_id, webhook_id)` names a
    webhook (None when unknown)."""

    def __init__(
        self,
        out: TextIO | None,
        webhook_name: Callable[[str, str], str | None],
        *,
        time_scale: float = 1.0,
    ) -> None:
        self.out = out
        self.webhook_name = webhook_name
        self.time_scale = time_scale
        self._lock = threading.Lock()
        #: (delivery id, attempt) of attempt lines printed, oldest first.
        self._printed: OrderedDict[tuple[str, int], None] = OrderedDict()
        #: retry lines waiting for their attempt line: key -> (held since, line)
        self._held: OrderedDict[tuple[str, int], tuple[float, str]] = OrderedDict()

    def say(self, line: str) -> None:
        if self.out is not None:
            with self._lock:
                print(line, file=self.out, flush=True)

    def _webhook(self, community_id: str, webhook_id: str) -> str:
        try:
            name = self.webhook_name(community_id, webhook_id) if community_id else None
        except Exception:  # naming is cosmetic: never lose the line over it
            name = None
        return f'"{name}" ({webhook_id})' if name else webhook_id

    # -- deliveries ---------------------------------------------------------------------------

    def attempt(self, record: AttemptRecord) -> None:
        outcome = str(record.status_code) if record.status_code is not None else "---"
        mark = "ok" if record.success else (record.error or "failed")
        webhook = self._webhook(str(record.item.get("community_id", "")), record.webhook_id)
        line = (
            f"{_time()}  {record.event:<24} {webhook:<44} {outcome} {mark:<14} "
            f"{record.response_time_ms:>5} ms  attempt {record.attempt}"
        )
        keys = [(record.delivery_id, record.attempt)]
        group = record.item.get("retry_group")
        if group and record.attempt == 1:
            keys.append((str(group), 1))  # a first attempt names the window group it joined
        with self._lock:
            for key in keys:
                self._printed[key] = None
            while len(self._printed) > _KEEP:
                self._printed.popitem(last=False)
            lines = [line]
            # A later round's line waits for the next attempt line of that number at its webhook.
            for key in [*keys, (f"webhook:{record.webhook_id}", record.attempt)]:
                held = self._held.pop(key, None)
                if held is not None:
                    lines.append(f"{_time()}  {held[1]}")
            lines.extend(f"{_time()}  {stale}" for stale in self._stale_locked())
        self._print(lines)

    def retry(self, document: dict[str, Any], seconds: float) -> None:
        """A retry wait starting after round `document["attempt"]` of a retry group (or after
        attempt `document["attempt"]` of a delivery)."""
        delivery_id = str(document.get("delivery_id", ""))
        done = int(document.get("attempt", 0))
        webhook = self._webhook(
            str(document.get("community_id", "")), str(document.get("webhook_id", ""))
        )
        scaled = seconds * self.time_scale
        at_scale = f" ({scaled:.3g} s at --time-scale {self.time_scale:g})"
        # The time is added when the line is printed, which may be after it was held.
        what = f"round {done + 1}" if document.get("group") else f"attempt {done + 1}"
        line = (
            f"retry of {delivery_id} to {webhook}: {what} "
            f"in {seconds:g} s{at_scale if scaled != seconds else ''}"
        )
        group = document.get("group")
        if not group:
            key = (delivery_id, done)
        elif done <= 1:
            key = (str(group), done)  # after the first attempts of the window group's members
        else:
            key = (f"webhook:{document.get('webhook_id', '')}", done)
        with self._lock:
            if (group and done == 0) or key in self._printed:
                # Nothing to follow yet (a recovered group's first round), or already printed.
                lines = [line, *self._stale_locked()]
            else:
                # Held until the attempt line it follows (at most RETRY_LINE_HOLD_SECONDS).
                self._held[key] = (time.monotonic(), line)
                lines = self._stale_locked()
        self._print([f"{_time()}  {line}" for line in lines])

    def attempts_printed_before(self, keys: list[tuple[str, int]]) -> None:
        """(delivery id, attempt) pairs whose attempt line an earlier run printed (retries
        resumed after a restart): their retry lines need not wait."""
        with self._lock:
            lines = []
            for key in keys:
                self._printed[key] = None
                held = self._held.pop(key, None)
                if held is not None:
                    lines.append(held[1])
        self._print([f"{_time()}  {line}" for line in lines])

    def flush_held(self) -> None:
        """Print retry lines whose attempt line did not come in time (called periodically)."""
        with self._lock:
            lines = self._stale_locked()
        self._print([f"{_time()}  {line}" for line in lines])

    def _stale_locked(self) -> list[str]:
        cutoff = time.monotonic() - RETRY_LINE_HOLD_SECONDS
        stale = [key for key, (since, _) in self._held.items() if since < cutoff]
        return [self._held.pop(key)[1] for key in stale]

    def _print(self, lines: list[str]) -> None:
        if self.out is None or not lines:
            return
        with self._lock:
            print("\n".join(lines), file=self.out, flush=True)

    # -- the API ------------------------------------------------------------------------------

    def failed_call(self, request: HttpRequest, response: HttpResponse) -> None:
        """One line for an API answer of 4xx/5xx: method, path (tokens masked), status, code,
        message and field. Never headers, query or body."""
        if response.status < 400:
            return
        code, message, field = "", "", None
        try:
            body = json.loads(response.body or b"{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            code = str(body.get("code", ""))
            message = str(body.get("message", ""))
            data = body.get("data")
            field = data.get("field") if isinstance(data, dict) else None
        detail = f"{code}: {message}" if code else message
        if field:
            detail += f" (field {field})"
        self.say(
            redact_text(
                f"{_time()}  {request.method} {request.path} -> {response.status} {detail}".rstrip()
            )
        )


def banner(stack: LocalStack) -> str:
    """What `hookline local` prints once started; every URL works as printed."""
    options = stack.options
    base = stack.base_url
    example = json.dumps({"name": "Demo Community", "site_url": "https://community.example"})
    private = "allowed" if options.allow_private_targets else "refused (--allow-private-targets)"
    key_origin = {
        "env": "from HOOKLINE_OPERATOR_KEY",
        "state": "kept in the state directory",
        "new": "new; kept in the state directory",
        "generated": "new on every start",
        "given": "given",
    }.get(stack.operator_key_origin, "")
    state = (
        f"{stack.state_dir}  (kept across restarts; --reset starts afresh)"
        if stack.state_dir is not None
        else "in memory only (lost when the stack stops)"
    )
    scales = (
        f"retry waits x{options.time_scale:g}, auto-disable window x{options.auto_disable_scale:g}"
    )
    return "\n".join(
        [
            "Hookline local stack (all in this process; nothing leaves this machine)",
            f"  Base URL:      {base}   (API under /v1, incoming webhooks at /v1/hooks/<token>)",
            f"  Docs:          {base}/v1/docs",
            f"  Inspector:     {base}/_inspect/<name>  (use it as a webhook URL)",
            f"  State:         {state}",
            f"  Operator key:  {stack.operator_key}  ({key_origin})",
            f"  Private/loopback targets: {private};  {scales}",
            "",
            "Paste into your shell:",
            f"  export HL={base} OP={stack.operator_key}",
            "",
            "Create a community:",
            '  curl -s -X POST $HL/v1/communities -H "Authorization: Bearer $OP" \\',
            f"    -H 'Content-Type: application/json' -d '{example}'",
            "",
            "Open the portal: curl -s -X POST $HL/v1/communities/$C/portal-sessions "
            '-H "Authorization: Bearer $KEY"  (C, KEY: the id and api_key.key answered above; '
            'open the "url" it answers)',
            "",
            "Deliveries (time, event, webhook, status, ms):",
        ]
    )
