"""``python -m genimg serve``: Ray started on loopback only, one request served, Ctrl-C or SIGTERM leaves no process
behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_bad_settings_are_refused_before_ray_starts():
    result = subprocess.run([sys.executable, "-m", "genimg", "serve", "--replicas", "0"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--replicas must be at least 1" in result.stderr
    assert "Started a local Ray instance" not in result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_listens_on_loopback_answers_and_stops_cleanly(stop_signal):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "genimg", "serve", "--backend", "gan", "--replicas", "1",
                               "--cpus", "1", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines, deadline = [], time.monotonic() + 240
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("genimg serving"):
                break
        assert lines and lines[-1].startswith("genimg serving"), "".join(lines)[-3000:]
        assert f"POST http://127.0.0.1:{port}/v1/image" in lines[-1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/image", data=json.dumps(
            {"prompt": "a red apple"}).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200 and json.loads(response.headers["Genimg-Info"])["backend"] == "gan"
        family = psutil.Process(server.pid).children(recursive=True)
        assert len(family) >= 3  # the GCS, the raylet, the replica, ...
        listening = [connection for process in family for connection in _listening(process)]
        assert listening and {connection.laddr.ip for connection in listening} <= LOOPBACK, listening
        server.send_signal(stop_signal)
        assert server.wait(timeout=120) == 0
        remaining = "".join(server.stdout.readlines())
        assert "genimg serve: stopped" in remaining
        time.sleep(2)
        alive = [process for process in family if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [process.cmdline()[:2] for process in alive]
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """A failed test still stops the server and every Ray process it started."""
    if server.poll() is not None:
        return
    family = psutil.Process(server.pid).children(recursive=True)
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)
    for process in family:
        if process.is_running():
            process.kill()


def _listening(process: psutil.Process) -> list:
    try:
        return [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
