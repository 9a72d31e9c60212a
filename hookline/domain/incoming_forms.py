"""Incoming webhook request bodies: multipart, form-encoded or JSON, parsed with caps, and the
validated fields of a call."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import collapse_rfc2231_value
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from hookline.domain.directory import (
    normalize_email,
    validate_login,
    validate_password,
    validate_person_name,
)
from hookline.errors import (
    InvalidParam,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    pass

MAX_FIELDS = 100
SUPPORTED_TYPES = "multipart/form-data, application/x-www-form-urlencoded or application/json"


_PART_HEAD_END = re.compile(rb"\r?\n\r?\n")
_MULTIPART_PART = re.compile(rb"(?im)^content-type:\s*multipart/")


def _refuse_nested_parts(boundary: str, body: bytes) -> None:
    """Refuse parts that are multipart themselves, and more parts than fields, before the email
    parser recurses into them (deep nesting costs seconds of CPU, then a RecursionError)."""
    chunks = body.split(b"--" + boundary.encode("latin-1", "replace"))[1:]
    if len(chunks) > MAX_FIELDS + 1:  # the closing delimiter makes one more chunk
        raise InvalidParam(f"Request body has more than {MAX_FIELDS} fields.", field="body")
    for chunk in chunks:
        part_head = _PART_HEAD_END.split(chunk, maxsplit=1)[0]
        if _MULTIPART_PART.search(part_head):
            raise InvalidParam(
                "Nested multipart parts are not supported; send flat form fields.", field="body"
            )


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    if "\r" in content_type or "\n" in content_type:
        raise InvalidParam("Content-Type header is malformed.", field="Content-Type")
    # Imported here: the email package's header machinery is a good share of a cold start, and
    # only multipart bodies need it.
    from email import policy
    from email.parser import BytesParser

    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    boundary = (
        BytesParser(policy=policy.HTTP).parsebytes(head, headersonly=True).get_param("boundary")
    )
    if not boundary or not isinstance(boundary, str):
        raise InvalidParam("multipart/form-data needs a boundary parameter.", field="Content-Type")
    _refuse_nested_parts(boundary, body)
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    except RecursionError as exc:  # a belt: nesting is refused above without parsing
        raise InvalidParam("Nested multipart parts are not supported.", field="body") from exc
    if not message.is_multipart():
        if body.strip() in (b"", f"--{message.get_param('boundary')}--".encode()):
            return {}  # a form with no fields
        raise InvalidParam("Request body is not valid multipart/form-data.", field="body")
    form: dict[str, Any] = {}
    for count, part in enumerate(message.iter_parts()):
        if count >= MAX_FIELDS:
            raise InvalidParam(f"Request body has more than {MAX_FIELDS} fields.", field="body")
        raw_name = part.get_param("name", header="content-disposition")
        if not raw_name or part.get_filename() is not None:
            continue  # files and unnamed parts carry nothing we use
        name = collapse_rfc2231_value(raw_name)
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            form[name] = data.decode(part.get_content_charset() or "utf-8")
        except (LookupError, UnicodeDecodeError) as exc:
            raise InvalidParam(f"Field {name[:60]!r} is not valid text.", field=name) from exc
    return form


def parse_form(content_type: str | None, body: bytes) -> dict[str, Any]:
    """The fields of a request body by its Content-Type (multipart/form-data,
    application/x-www-form-urlencoded or application/json). Later duplicates of a form field win.
    Raises UnsupportedMediaType or InvalidParam."""
    full = content_type or ""
    media = full.split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise InvalidParam("Request body is not valid JSON.", field="body") from exc
        if not isinstance(data, dict):
            raise InvalidParam("The JSON body must be an object.", field="body")
        return data
    if media == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            return dict(
                parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
            )
        except UnicodeDecodeError as exc:
            raise InvalidParam("Request body is not valid UTF-8.", field="body") from exc
        except ValueError as exc:
            raise InvalidParam(
                f"Request body has more than {MAX_FIELDS} fields.", field="body"
            ) from exc
    if media == "multipart/form-data":
        return _parse_multipart(full, body)
    if not media:
        raise UnsupportedMediaType(f"Content-Type is required: send {SUPPORTED_TYPES}.")
    raise UnsupportedMediaType(
        f"Content-Type {media[:100]!r} is not supported; send {SUPPORTED_TYPES}."
    )


@dataclass(frozen=True)
class InboundFields:
    """The validated fields of a call. `__repr__` leaves the password out."""

    email: str
    first_name: str = ""
    last_name: str = ""
    user_login: str = ""
    user_pass: str = field(default="", repr=False)


def validate_fields(form: Mapping[str, Any]) -> InboundFields:
    """Check email (required) and the optional new-user fields; blank optional fields count as
    absent. Raises InvalidParam naming the field."""
    return InboundFields(
        email=normalize_email(form.get("email")),
        first_name=validate_person_name(form.get("first_name") or None, "first_name"),
        last_name=validate_person_name(form.get("last_name") or None, "last_name"),
        user_login=validate_login(form.get("user_login") or None),
        user_pass=validate_password(form.get("user_pass")),
    )
