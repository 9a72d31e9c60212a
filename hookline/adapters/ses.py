"""Mailer over Amazon SES, or an outbox folder when one is configured (the local stack)."""

from __future__ import annotations

import json
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from hookline.adapters import aws


class MailNotConfigured(RuntimeError):
    """No sender address is configured, so no mail can be sent."""


@lru_cache(maxsize=1)
def _client() -> Any:
    return aws.client("ses")


def clear_client_cache() -> None:
    """Forget the cached SES client (tests switching between mocked accounts or regions)."""
    _client.cache_clear()


class SesMailer:
    """Sends plain-text mail from `sender`. With `outbox_dir` set, each message is written there
    as JSON and announced on stdout instead (the local stack has no SES)."""

    def __init__(self, sender: str, *, outbox_dir: str = "") -> None:
        self.sender = sender
        self.outbox_dir = outbox_dir

    def send(self, *, to: str, subject: str, text: str) -> None:
        if self.outbox_dir:
            self._to_outbox(to=to, subject=subject, text=text)
            return
        if not self.sender:
            raise MailNotConfigured("MAIL_SENDER is empty: mail is switched off")
        _client().send_email(
            Source=self.sender,
            Destination={"ToAddresses": [to]},
            Message={
                "Subject": {"Data": subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
            },
        )

    def _to_outbox(self, *, to: str, subject: str, text: str) -> Path:
        folder = Path(self.outbox_dir)
        folder.mkdir(parents=True, exist_ok=True)
        message = {
            "from": self.sender,
            "to": to,
            "subject": subject,
            "text": text,
            "sent_at": time.time(),
        }
        path = folder / f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(message, indent=2))
        print(f"[mail] to {to}: {subject} ({path})", flush=True)
        return path
