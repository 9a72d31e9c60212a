"""`hookline local` keeps its state across restarts: run as a user would (the CLI in its own
process), killed with SIGKILL in the middle of work, started again on the same state directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from hookline import clock
from hookline.config import settings
from hookline.domain import policy
from hookline_dev.local.state import JOURNAL, KEY_FILE, resume_retries
from tests.conftest import RecordingScheduler

#: Retry waits x0.005: the 300 s first retry takes 1.5 s, the 1800 s second one 9 s.
TIME_SCALE = "0.005"


class Cli:
    """One `hookline local` process on a free port."""

    def __init__(
        self, state_dir: Path, *extra: str, port: int = 0, env: dict[str, str] | None = None
    ) -> None:
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HOOKLINE_"))
        }
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "hookline_dev.cli",
                "local",
                "--port",
                str(port),
                "--allow-private-targets",
                "--time-scale",
                TIME_SCALE,
                "--state-dir",
                str(state_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**base_env, **(env or {})},
            cwd=state_dir.parent,
        )
        self.lines: list[str] = []
        self.base_url = self.operator_key = ""
        assert self.process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.strip().startswith("export HL="):
                exported = dict(part.split("=", 1) for part in line.split()[1:])
                self.base_url, self.operator_key = exported["HL"], exported["OP"]
            if line.startswith("Deliveries"):
                break
        assert self.base_url, "".join(self.lines)

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.base_url}{path}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
            **kwargs,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=30)
        return "".join(self.lines) + (output or "")


@pytest.fixture
def clis() -> Iterator[list[Cli]]:
    started: list[Cli] = []
    yield started
    for cli in started:
        if cli.process.poll() is None:
            cli.kill()


def _items(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    items: list[dict[str, Any]] = body if isinstance(body, list) else body["data"]
    return items


def _logs(cli: Cli, community_id: str, key: str, webhook_id: str) -> list[dict[str, Any]]:
    path = f"/v1/communities/{community_id}/webhooks/{webhook_id}/logs?per_page=50"
    return _items(cli.call("GET", path, key))


def test_a_kill_mid_run_loses_nothing_acknowledged_and_retries_resume(
    tmp_path: Path, clis: list[Cli]
) -> None:
    state = tmp_path / "state"
    # The same port after the restart: the webhooks point at this stack's inspector.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = Cli(state, port=port)
    clis.append(first)
    operator = first.operator_key
    created = first.call(
        "POST",
        "/v1/communities",
        operator,
        json={"name": "Survivor", "site_url": "https://survivor.example"},
    )
    assert created.status_code == 201, created.text
    community_id, key = created.json()["id"], created.json()["api_key"]["key"]
    webhooks = f"/v1/communities/{community_id}/webhooks"
    healthy = first.call(
        "POST",
        webhooks,
        key,
        # A slow receiver keeps the dispatcher busy, so events are still waiting at the kill.
        json={
            "name": "healthy",
            "url": f"{first.base_url}/_inspect/ok?delay=0.3",
            "events": ["post.created"],
        },
    ).json()
    failing = first.call(
        "POST",
        webhooks,
        key,
        json={
            "name": "failing",
            "url": f"{first.base_url}/_inspect/down?status=503",
            # Not "*": the delivery.failed events of its own failures would fill its log.
            "events": ["post.created"],
            "retry_count": 2,
        },
    ).json()
    published = []
    for i in range(12):
        answer = first.call(
            "POST",
            f"/v1/communities/{community_id}/events",
            key,
            json={"event": "post.created", "data": {"n": i}},
        )
        assert answer.status_code == 202, answer.text
        published.append(answer.json()["id"])
    first.kill()
    assert first.process.stdout is not None
    before_kill = [line for line in first.process.stdout.read().splitlines() if '"healthy"' in line]
    assert len(before_kill) < len(published), "nothing was left to dispatch at the kill"
    assert (state / JOURNAL).is_file()
    assert oct((state / KEY_FILE).stat().st_mode & 0o777) == "0o600"

    second = Cli(state, port=port)
    clis.append(second)
    assert second.operator_key == operator
    assert any("(kept in the state directory)" in line for line in second.lines)
    # Communities, keys and webhooks survived.
    listed = _items(second.call("GET", webhooks, key))
    assert {w["id"] for w in listed} == {healthy["id"], failing["id"]}

    def delivered() -> list[dict[str, Any]]:
        logs = _logs(second, community_id, key, healthy["id"])
        return [a for a in logs if a["success"] and a["event_id"] in published]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(delivered()) < len(published):
        time.sleep(0.5)
    # Every acknowledged event reached the healthy endpoint, exactly once.
    assert sorted(a["event_id"] for a in delivered()) == sorted(published)

    # The failing endpoint's retries continue after the restart: 1 + retry_count attempts each.
    def attempts() -> list[dict[str, Any]]:
        logs = _logs(second, community_id, key, failing["id"])
        return [a for a in logs if a["event_id"] in published]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(attempts()) < 3 * len(published):
        time.sleep(0.5)
    counts: dict[str, list[int]] = {}
    for attempt in attempts():
        counts.setdefault(attempt["event_id"], []).append(attempt["attempt"])
    assert sorted(counts) == sorted(published)
    assert all(sorted(numbers) == [1, 2, 3] for numbers in counts.values()), counts
    output = second.stop()
    assert "Traceback" not in output


def test_the_operator_key_can_come_from_the_environment_and_reset_forgets_data(
    tmp_path: Path, clis: list[Cli]
) -> None:
    state = tmp_path / "state"
    given = "hk_" + "k" * 43
    first = Cli(state, env={"HOOKLINE_OPERATOR_KEY": given})
    clis.append(first)
    assert first.operator_key == given
    assert any("(from HOOKLINE_OPERATOR_KEY)" in line for line in first.lines)
    created = first.call(
        "POST",
        "/v1/communities",
        given,
        json={"name": "Forgotten", "site_url": "https://forgotten.example"},
    )
    key = created.json()["api_key"]["key"]
    first.stop()

    kept = Cli(state, env={"HOOKLINE_OPERATOR_KEY": given})
    clis.append(kept)
    assert kept.call("GET", "/v1/event-types", key).status_code == 200
    kept.stop()

    reset = Cli(state, "--reset")
    clis.append(reset)
    # The key file of the state directory was never written (the key came from the
    # environment), so a reset run gets a new one; the community is gone.
    assert reset.operator_key != given
    assert reset.call("GET", "/v1/event-types", key).status_code == 401
    reset.stop()


def test_a_resumed_window_group_keeps_its_window_and_first_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart the retrying members' groups start again. A window group keeps the whole
    window (not just its members' span) and its first round, so a member of that window written
    after the restart, which joins the group by name, is read and attempted on time."""
    monkeypatch.setenv("RETRY_GROUP_WINDOW_SECONDS", "60")
    monkeypatch.setenv("RETRY_SCHEDULE", "300,1800")
    monkeypatch.delenv("RETRY_TIME_SCALE", raising=False)
    settings.cache_clear()
    try:
        begin = clock.now().replace(second=0, microsecond=0)
        created = [clock.iso(begin + timedelta(seconds=s)) for s in (10, 20)]
        name, window, first_retry = policy.window_group(
            community_id="com_1",
            webhook_id="wh_1",
            created_at=created[0],
            window_seconds=60,
            schedule=(300, 1800),
            time_scale=1.0,
        )
        later = clock.iso(clock.parse_iso(first_retry) + timedelta(hours=1))  # a Retry-After
        items = [
            {
                "sk": f"D#dlv_{n}",
                "id": f"dlv_{n}",
                "state": "retrying",
                "community_id": "com_1",
                "webhook_id": "wh_1",
                "created_at": at,
                "retry_group": name,
                "next_attempt_at": later,
                "attempts": 1,
            }
            for n, at in enumerate(created)
        ]
        tables = SimpleNamespace(deliveries=SimpleNamespace(scan_all=lambda: items))
        scheduler = RecordingScheduler()
        assert resume_retries(tables, scheduler) == [("dlv_0", 1), ("dlv_1", 1)]  # type: ignore[arg-type]
    finally:
        settings.cache_clear()
    [started] = scheduler.started
    assert started["name"] == name
    document = started["document"]
    assert (document["since"], document["until"]) == (window["since"], window["until"])
    late_member = clock.iso(begin + timedelta(seconds=50))
    assert document["since"] <= late_member < document["until"]
    assert document["wait_seconds"] <= policy.seconds_until(first_retry, 1.0)
