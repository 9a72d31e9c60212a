"""Helpers for the directory and incoming-webhook tests.

    world = World.create(services)                  # a community with its admin key
    space = world.space("Premium"); course = world.course("Onboarding")
    hook, token = world.incoming(add_spaces=[space.id], send_welcome_email=True)
    status, body = post_form(token, {"email": "a@example.com"})            # multipart, base64
    status, body = post(token, b'{"email": 1}', "application/json")       # any body / type

`post` runs functions/inbound/app.py with an event built from events/inbound-form-post.json.
`fast_hashing` (a fixture) lowers the scrypt cost for tests that create many users.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest

from hookline import wiring
from hookline.adapters.dynamodb import DynamoTables
from hookline.domain import communities, directory, incoming
from hookline.domain.directory import Directory
from hookline.domain.directory_repository import Group
from hookline.domain.incoming_repository import IncomingLog, IncomingRepository, IncomingWebhook
from hookline.domain.models import ApiKey, Community
from hookline.domain.repositories import CommunityRepository
from hookline_dev.local.lambdas import LambdaContext, load_handler
from tests.apigw import sample

SENDER = "no-reply@hookline.example"
REGION = "us-east-1"


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cheap scrypt cost (the format and verification are unchanged)."""
    monkeypatch.setattr(directory, "SCRYPT_PARAMS", (2**10, 8, 1))


@dataclass
class Mailbox:
    """A Mailer that keeps what it was asked to send."""

    sent: list[dict[str, str]] = field(default_factory=list)

    def send(self, *, to: str, subject: str, text: str) -> None:
        self.sent.append({"to": to, "subject": subject, "text": text})


@dataclass
class World:
    services: wiring.Services
    community: Community
    key: ApiKey

    @classmethod
    def create(cls, services: wiring.Services, *, name: str = "Acme Forum") -> World:
        repo = CommunityRepository(services.tables.communities)
        community, key, _ = communities.create_community(
            repo, name=name, site_url="https://forum.example.com"
        )
        return cls(services, community, key)

    @property
    def authorizer(self) -> dict[str, str]:
        return {
            "principalId": self.key.id,
            "role": "admin",
            "community_id": self.community.id,
            "key_id": self.key.id,
        }

    def directory(self) -> Directory:
        return Directory.open(self.services.tables, self.community.id)

    def space(self, name: str) -> Group:
        return self.directory().create_group("space", name=name)

    def course(self, name: str) -> Group:
        return self.directory().create_group("course", name=name)

    def incoming(self, **fields: Any) -> tuple[IncomingWebhook, str]:
        hook, token, _ = incoming.create_incoming(
            IncomingRepository(self.services.tables.communities),
            self.directory(),
            {"name": "Test hook", **fields},
        )
        return hook, token

    def logs(self, hook_id: str) -> list[IncomingLog]:
        entries, _ = IncomingRepository(self.services.tables.communities).logs(hook_id, limit=50)
        return entries

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events stored for this community (the events table's items)."""
        from hookline.ports import Query

        page = self.services.tables.events.query(
            Query(f"C#{self.community.id}", prefix="E#", limit=1000)
        )
        return [i for i in page.items if event_type is None or i["event"] == event_type]


def multipart(fields: Mapping[str, str], *, boundary: str | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body as curl --form sends it: (body, content type)."""
    mark = boundary or "------------------------" + secrets.token_hex(8)
    body = b"".join(
        f'--{mark}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode("utf-8")
        + b"\r\n"
        for name, value in fields.items()
    )
    return body + f"--{mark}--\r\n".encode(), f"multipart/form-data; boundary={mark}"


def inbound_event(
    token: str,
    body: bytes,
    content_type: str | None,
    *,
    source_ip: str = "203.0.113.10",
    headers: Mapping[str, str] | None = None,
    encode: bool | None = None,
) -> dict[str, Any]:
    """events/inbound-form-post.json for this token and body. Multipart bodies are base64
    encoded, as API Gateway does for the binary media type; others are sent as text."""
    event = sample("inbound-form-post")
    event["path"] = f"/v1/hooks/{token}"
    event["requestContext"]["path"] = f"/dev/v1/hooks/{token}"
    event["pathParameters"] = {"token": token}
    event["requestContext"]["identity"]["sourceIp"] = source_ip
    all_headers = {
        k: v for k, v in event["headers"].items() if k not in ("Content-Type", "Content-Length")
    }
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    all_headers["Content-Length"] = str(len(body))
    all_headers.update(headers or {})
    event["headers"] = all_headers
    event["multiValueHeaders"] = {k: [v] for k, v in all_headers.items()}
    binary = encode if encode is not None else (content_type or "").startswith("multipart/")
    event["isBase64Encoded"] = binary
    event["body"] = base64.b64encode(body).decode() if binary else body.decode("utf-8")
    return event


def call_inbound(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = load_handler("inbound")(event, LambdaContext("InboundFunction"))
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def post(
    token: str, body: bytes, content_type: str | None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    return call_inbound(inbound_event(token, body, content_type, **kwargs))


def post_form(token: str, fields: Mapping[str, str], **kwargs: Any) -> tuple[int, dict[str, Any]]:
    body, content_type = multipart(fields)
    return post(token, body, content_type, **kwargs)


@contextlib.contextmanager
def aws_services(
    base: wiring.Services, *, mail: bool = True, tables: bool = False
) -> Iterator[wiring.Services]:
    """Inside moto: SES (sender verified) as the mailer, and optionally DynamoDB tables built
    from template.yaml in place of the memory tables."""
    from moto import mock_aws

    from hookline.adapters import dynamodb as dynamodb_adapter
    from hookline.adapters import ses
    from hookline_dev.template import create_tables, table_environment

    with mock_aws():
        ses.clear_client_cache()
        dynamodb_adapter.client.cache_clear()
        overrides: dict[str, Any] = {}
        if mail:
            boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=SENDER)
            overrides["mailer"] = ses.SesMailer(SENDER)
        if tables:
            names = create_tables(boto3.client("dynamodb", region_name=REGION), "hookline-test")
            env = table_environment(names)
            settings = replace(
                base.settings,
                communities_table=env["COMMUNITIES_TABLE"],
                webhooks_table=env["WEBHOOKS_TABLE"],
                events_table=env["EVENTS_TABLE"],
                deliveries_table=env["DELIVERIES_TABLE"],
                directory_table=env["DIRECTORY_TABLE"],
            )
            overrides.update(settings=settings, tables=DynamoTables(settings))
        wiring.configure(**overrides)
        try:
            yield wiring.services()
        finally:
            ses.clear_client_cache()
            dynamodb_adapter.client.cache_clear()


def sent_mail() -> list[Any]:
    """Messages moto's SES accepted (moto.ses.models.Message: source, destinations, subject,
    body)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)
