"""The signature of an incoming-webhook call, and the memory that refuses its replay.

A webhook with a signing secret accepts only Standard Webhooks signatures (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``): they cover a timestamp, which must be within
``TOLERANCE_SECONDS`` of now, and an id. Each id is claimed once per webhook, in the
CommunitiesTable as ``INSEEN#<iid>``/``<webhook-id>`` expiring with the window, so the same
signed request sent again inside the window is refused. ``X-Hookline-Signature`` covers the body
only (a captured call could be replayed forever) and is not accepted on incoming calls.
"""

from __future__ import annotations

from collections.abc import Mapping

from hookline import receiver
from hookline.domain.signing import HEADER_BODY_SIGNATURE, HEADER_ID, HEADER_SIGNATURE
from hookline.errors import ConditionFailed
from hookline.ports import Table

TOLERANCE_SECONDS = 300
MAX_MESSAGE_ID_LENGTH = 256


class SignatureRefused(Exception):
    """The call is not signed as required; ``reason`` is the sentence the sender gets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_call(
    headers: Mapping[str, str], raw_body: bytes, secret: str, *, now: int | None = None
) -> receiver.SignedMessage:
    """The verified id and timestamp of a signed call. Raises SignatureRefused."""
    names = {str(name).lower() for name in headers}
    if HEADER_BODY_SIGNATURE.lower() in names and not names & {HEADER_ID, HEADER_SIGNATURE}:
        raise SignatureRefused(
            "X-Hookline-Signature does not cover a timestamp and is not accepted on incoming "
            "calls; sign with webhook-id, webhook-timestamp and webhook-signature "
            "(Standard Webhooks)"
        )
    try:
        signed = receiver.verify_standard(
            headers, raw_body, secret, tolerance_seconds=TOLERANCE_SECONDS, now=now
        )
    except receiver.VerificationError as exc:
        raise SignatureRefused(exc.reason) from None
    if len(signed.message_id) > MAX_MESSAGE_ID_LENGTH or not signed.message_id.isprintable():
        raise SignatureRefused(
            f"webhook-id must be at most {MAX_MESSAGE_ID_LENGTH} printable characters"
        )
    return signed


def _key(incoming_id: str, message_id: str) -> tuple[str, str]:
    return f"INSEEN#{incoming_id}", message_id


class ReplayGuard:
    """Claims each signed message id once per incoming webhook for the tolerance window."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def claim(self, incoming_id: str, signed: receiver.SignedMessage, *, now: int) -> bool:
        """True for the first call with this id inside its window, False for a replay."""
        pk, sk = _key(incoming_id, signed.message_id)
        expires_at = max(signed.timestamp, now) + TOLERANCE_SECONDS
        try:
            self.table.put({"pk": pk, "sk": sk, "expires_at": expires_at}, if_absent=True)
            return True
        except ConditionFailed:
            pass
        seen = self.table.get(pk, sk)
        # TTL deletes lazily: a claim whose window has passed may still be there.
        if seen is not None and int(seen["expires_at"]) > now:
            return False
        try:
            if seen is None:
                self.table.put({"pk": pk, "sk": sk, "expires_at": expires_at}, if_absent=True)
            else:
                self.table.update(
                    pk,
                    sk,
                    set={"expires_at": expires_at},
                    expect={"expires_at": seen["expires_at"]},
                )
        except ConditionFailed:
            return False  # another call claimed it meanwhile
        return True

    def release(self, incoming_id: str, message_id: str) -> None:
        """Forget a claim (the call failed on our side, so the sender's retry must get through)."""
        self.table.delete(*_key(incoming_id, message_id))
