"""The `local_stack` fixture: the whole system (`hookline local`) on a free loopback port.

Use it from a test module with

    from tests.localstack_fixtures import local_stack  # noqa: F401

or for every module with ``pytest_plugins = ["tests.localstack_fixtures"]`` in conftest.py.

The stack is module-scoped: moto and the process environment are process-wide, so it lives only
while one module's tests run (no other test can see its tables or environment), and each
pytest-xdist worker, being its own process, gets its own stack and port. Loopback targets are
allowed and retry waits are scaled by 0.0001 (the 300/1800/7200 s schedule takes under a second).

    def test_something(local_stack):
        requests.post(f"{local_stack.base_url}/v1/communities",
                      headers=local_stack.operator_headers(), json={...})
        local_stack.wait_for(lambda: local_stack.inspected("bin"), timeout=5)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hookline_dev.local import LocalOptions, LocalStack

TIME_SCALE = 0.0001


class LocalStackHandle(LocalStack):
    """LocalStack with a few conveniences for tests."""

    def operator_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_key}"}

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def community(self, name: str = "Local Test") -> tuple[str, str]:
        """A new community: (its id, its first admin key)."""
        import requests

        response = requests.post(
            self.url("/v1/communities"),
            headers=self.operator_headers(),
            json={"name": name, "site_url": "https://community.example"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["api_key"]["key"]

    def webhook(self, community_id: str, key: str, url: str, **fields: Any) -> dict[str, Any]:
        """A new webhook for every event type (`fields` override or add to the body)."""
        import requests

        response = requests.post(
            self.url(f"/v1/communities/{community_id}/webhooks"),
            headers=self.headers(key),
            json={"name": "inspector", "url": url, "events": ["*"], **fields},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def inspected(self, name: str) -> list[dict[str, Any]]:
        """The requests inspector bin `name` received, newest first, unmasked."""
        return [c.to_json(mask=False) for c in self.inspector.requests(name)]


def start_local_stack(**overrides: Any) -> LocalStackHandle:
    """A started stack on a free port (stop() it). Options default to the fixture's."""
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "allow_private_targets": True,
        "time_scale": TIME_SCALE,
        "log_level": "WARNING",
    }
    options.update(overrides)
    stack = LocalStackHandle(LocalOptions(**options))
    stack.start()
    return stack


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackHandle]:
    stack = start_local_stack(data_dir=tmp_path_factory.mktemp("hookline-local"))
    try:
        yield stack
    finally:
        stack.stop()
