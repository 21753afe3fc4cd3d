"""Regression tests for the published Gradio advisories that apply to this app, each sent as the attacker's request
to the app launched on 127.0.0.1, asserting the refusal. Advisories (GitHub Security Advisories / CVEs of gradio):

- file read / path traversal through the file routes: CVE-2023-51449, CVE-2024-1561, CVE-2024-47164, CVE-2024-47166
  (custom_component route), CVE-2024-47168; symlinks out of the cache;
- server-side requests (SSRF) through the file, proxy and queue routes: CVE-2023-34239 (proxy), CVE-2024-4325 and
  CVE-2024-47167 (a FileData path or URL in a request);
- cross-origin requests: CVE-2024-1727, CVE-2024-47084, CVE-2024-47165 (null origin), gradio-app/gradio#13594 (Host
  header: DNS rebinding);
- upload abuse: CVE-2024-1727 (cross-site upload), and tests/test_app_uploads.py (size, count, hostile names);
- the component server calling component methods with attacker data: CVE-2024-1561.
"""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SECRET_MARKERS = ("root:", "import gradio", "z_dim", "PATH=", "canary-secret")
EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def canary():
    """An HTTP server on loopback that the app must never be made to call; it counts the requests it gets."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"canary-secret")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", hits
    server.shutdown()


def assert_nothing_leaked(response: httpx.Response) -> None:
    assert not any(marker in response.text for marker in SECRET_MARKERS), response.text[:300]


def cache_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


@pytest.mark.parametrize("path", [
    "/gradio_api/file=/etc/passwd", "/gradio_api/file=//etc/passwd", "/gradio_api/file=/proc/self/environ",
    "/gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/gradio_api/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file=%252e%252e%252f%252e%252e%252fetc%252fpasswd", "/gradio_api/file={cache}/../../../../etc/passwd",
    "/gradio_api/file={cache}/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/gradio_api/file={root}/app.py",
    "/gradio_api/file={root}/assets/models/gan/config.json", "/gradio_api/file={root}/assets/bench/../../app.py",
    "/gradio_api/custom_component/x/client/../../../../../etc/passwd",
    "/gradio_api/custom_component/x/client/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/assets/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/gradio_api/file=/etc/passwd%00.png",
])
def test_file_routes_serve_nothing_outside_the_apps_folders(app_url, path):
    response = httpx.get(app_url.rstrip("/") + path.format(cache=cache_folder(), root=ROOT))
    assert response.status_code in (400, 403, 404, 405, 422), (response.status_code, response.text[:200])
    assert_nothing_leaked(response)


def test_a_symlink_in_the_cache_does_not_lead_out_of_it(app_url):
    link = cache_folder() / "security-test-link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to("/etc/passwd")
    try:
        response = httpx.get(f"{app_url.rstrip('/')}/gradio_api/file={link}")
        assert response.status_code in (403, 404) and "root:" not in response.text
    finally:
        link.unlink()


@pytest.mark.parametrize("route", ["/gradio_api/proxy={canary}/secret", "/proxy={canary}/secret",
                                   "/gradio_api/file={canary}/secret", "/gradio_api/file=http%3A%2F%2F{host}/secret"])
def test_file_and_proxy_routes_make_no_server_side_request(app_url, canary, route):
    url, hits = canary
    response = httpx.get(app_url.rstrip("/") + route.format(canary=url, host=url.split("//")[1]))
    assert response.status_code >= 400 and not hits, (response.status_code, hits)
    assert_nothing_leaked(response)


def call_api(app_url: str, api_name: str, data: list) -> str:
    """A request through the call API, as a script would send it; returns the event stream's text."""
    base = app_url.rstrip("/") + "/gradio_api/call/" + api_name
    posted = httpx.post(base, json={"data": data}, timeout=60)
    if posted.status_code != 200:
        return posted.text
    return httpx.get(f"{base}/{posted.json()['event_id']}", timeout=120).text


@pytest.mark.parametrize("payload", [
    {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
    {"path": "{canary}/secret", "url": "{canary}/secret", "meta": {"_type": "gradio.FileData"}},
    {"path": "{root}/app.py", "orig_name": "app.py", "meta": {"_type": "gradio.FileData"}},
])
def test_file_data_smuggled_into_a_request_is_neither_read_nor_fetched(app_url, canary, payload):
    url, hits = canary
    payload = json.loads(json.dumps(payload).replace("{canary}", url).replace("{root}", str(ROOT)))
    stream = call_api(app_url, "generate_one", [payload, "gan", 0, "fp32", 0])
    assert not hits and not any(marker in stream for marker in SECRET_MARKERS), stream[:300]
    assert "error" in stream  # a FileData is no prompt: refused, not drawn


def test_the_component_server_runs_no_component_method_on_attacker_data(app_url):
    """CVE-2024-1561: move_resource_to_block_cache('/etc/passwd') through /component_server copied the file into
    the cache, from where /file= served it."""
    config = httpx.get(app_url + "config").json()
    for component in config["components"][:40]:
        for fn_name in ("move_resource_to_block_cache", "move_resource_to_cache", "preprocess", "postprocess"):
            response = httpx.post(app_url.rstrip("/") + "/gradio_api/component_server", json={
                "data": "/etc/passwd", "component_id": component["id"], "session_hash": "attacker",
                "fn_name": fn_name})
            assert response.status_code >= 400, (component.get("type"), fn_name, response.text[:200])
            assert_nothing_leaked(response)
    copied = [path for path in cache_folder().rglob("passwd")]
    assert not copied, copied


@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                                    "http://evil.example:7860", "file://"])
@pytest.mark.parametrize("method, route", [("GET", "config"), ("POST", "gradio_api/upload"),
                                           ("GET", "gradio_api/info"), ("POST", "gradio_api/queue/join")])
def test_a_foreign_origin_gets_no_cross_origin_permission(app_url, origin, method, route):
    headers = {"Origin": origin, "Cookie": "access-token=stolen"}  # CVE-2024-47084: a cookie skipped the check
    response = httpx.request(method, app_url + route, headers=headers, content=b"{}" if method == "POST" else None)
    allowed = response.headers.get("access-control-allow-origin")
    assert allowed is None or allowed not in (origin, "*"), (route, allowed)
    preflight = httpx.options(app_url + route, headers={"Origin": origin, "Access-Control-Request-Method": method})
    assert preflight.headers.get("access-control-allow-origin") not in (origin, "*")


def test_a_local_origin_is_still_allowed(app_url):
    port = app_url.rstrip("/").rsplit(":", 1)[1]
    response = httpx.get(app_url + "config", headers={"Origin": f"http://localhost:{port}"})
    assert response.headers.get("access-control-allow-origin") == f"http://localhost:{port}"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7860", "127.0.0.1.evil.example", "0.0.0.0"])
def test_requests_addressed_to_another_host_are_refused_dns_rebinding(app_url, host):
    """gradio-app/gradio#13594: with a non-local Host header Gradio allows every origin; a page using DNS rebinding
    sends exactly that. The app, listening on loopback, refuses such requests outright."""
    response = httpx.get(app_url + "config", headers={"Host": host, "Origin": f"http://{host}"})
    assert response.status_code == 421 and "only answers requests for this machine" in response.text
    assert "components" not in response.text  # Gradio's CORS layer sits outside ours: the page may read the refusal
    upload = httpx.post(app_url + "gradio_api/upload", headers={"Host": host}, files={"files": ("a.txt", b"x")})
    assert upload.status_code == 421


def test_environment_of_the_server_is_not_exposed(app_url):
    """No route echoes the server's environment or its file system layout beyond the app's own folders."""
    for route in ("config", "gradio_api/info", "gradio_api/startup-events"):
        response = httpx.get(app_url + route)
        # The values themselves: Gradio's generated curl snippet for an upload endpoint says FILE_PATH=$(...).
        assert os.environ.get("HOME", "/root") + "/.ssh" not in response.text
        assert os.environ["PATH"] not in response.text
