"""The autouse guard in tests/conftest.py: a test that resolves a public name fails, even when
the lookup happens on another thread; localhost and IP literals resolve as usual."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBES = """
import socket
import threading


def test_a_public_name():
    socket.getaddrinfo("example.com", 443)


def test_a_public_name_on_another_thread():
    worker = threading.Thread(target=lambda: _swallow("api.example.org"))
    worker.start()
    worker.join()


def test_localhost_and_literals():
    socket.getaddrinfo("localhost", 80)
    socket.getaddrinfo("127.0.0.1", 80)
    socket.getaddrinfo("::1", 80)


def _swallow(name):
    try:
        socket.getaddrinfo(name, 443)
    except OSError:
        pass
"""


def test_a_lookup_of_a_public_name_fails_the_test(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBES)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", str(probe)]
    run = subprocess.run(  # noqa: S603  (our own interpreter on our own file)
        [*command, "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "400"},
    )
    out = run.stdout
    assert run.returncode == 1, out
    assert "the test resolved ['example.com']" in out
    assert "the test resolved ['api.example.org']" in out
    summary = out.split("short test summary")[-1]
    assert "test_probe.py::test_a_public_name " in summary
    assert "test_probe.py::test_a_public_name_on_another_thread" in summary
    assert "test_localhost_and_literals" not in summary


def test_the_guard_refuses_before_anything_leaves_the_machine(
    _no_public_name_lookups: list[str],
) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("hooks.example.com", 443)
    assert _no_public_name_lookups == ["hooks.example.com"]
    _no_public_name_lookups.clear()  # this test tripped the guard on purpose
