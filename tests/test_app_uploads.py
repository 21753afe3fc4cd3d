"""Uploads to the launched app, as an attacker would send them: too big, too many, hostile names. Each is refused or
confined to Gradio's temporary folder; an audit hook records every file the process writes, renames or creates
meanwhile, and all of them must lie inside that folder."""
from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from genimg.serve.launch import free_port
from genimg.serve.uploads import MB, TRIM_EVERY_S, UploadLimits, folder_usage

pytestmark = pytest.mark.slow
SMALL = UploadLimits(max_file_mb=1, max_folder_mb=6, max_folder_files=150, max_age_s=3600)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_recording: list | None = None
_hook_lock = threading.Lock()


def _audit(event: str, args: tuple) -> None:
    if _recording is None:
        return
    paths = []
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = isinstance(mode, str) and any(c in mode for c in "wax+")
        if writing or (isinstance(flags, int) and flags & WRITE_FLAGS):
            paths.append(args[0])
    elif event in ("os.rename", "os.replace", "os.link", "os.symlink"):
        paths.append(args[1])
    elif event in ("os.mkdir", "os.truncate", "shutil.copyfile", "shutil.move"):
        paths.append(args[-2] if event == "shutil.copyfile" else args[0])
    with _hook_lock:
        _recording.extend(os.fsdecode(path) for path in paths if isinstance(path, (str, bytes, os.PathLike)))


sys.addaudithook(_audit)


class WritesRecorded:
    """Every path the process writes, renames to or creates while the block runs."""

    def __enter__(self) -> list[str]:
        global _recording
        _recording = []
        return _recording

    def __exit__(self, *_) -> None:
        global _recording
        _recording = None


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app with small upload limits and a temporary folder of its own, launched once for this module."""
    import app

    folder = tmp_path_factory.mktemp("gradio-temp")
    saved = os.environ.get("GRADIO_TEMP_DIR"), app.UPLOADS
    os.environ["GRADIO_TEMP_DIR"], app.UPLOADS = str(folder), SMALL
    demo = app.build_demo()
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(),
                           quiet=True)
    yield url.rstrip("/"), folder.resolve()
    demo.close()
    app.UPLOADS = saved[1]
    if saved[0] is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved[0]


def multipart(files: list[tuple[bytes, bytes]]) -> tuple[bytes, dict]:
    """A multipart body built by hand, so that file names reach the server exactly as given (NUL, '..', 5,000 bytes)."""
    boundary = uuid.uuid4().hex.encode()
    body = b"".join(b"--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="' + name +
                    b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + content + b"\r\n"
                    for name, content in files) + b"--" + boundary + b"--\r\n"
    return body, {"content-type": "multipart/form-data; boundary=" + boundary.decode()}


def upload(client: httpx.Client, url: str, files: list[tuple[bytes, bytes]]) -> httpx.Response:
    body, headers = multipart(files)
    return client.post(url + "/gradio_api/upload", content=body, headers=headers, timeout=60)


def outside(paths: list[str], folder: Path) -> list[str]:
    return [path for path in paths if not Path(os.path.abspath(path)).resolve().is_relative_to(folder)]


def test_an_oversized_upload_is_refused_and_leaves_nothing_behind(served):
    url, folder = served
    before = folder_usage(folder)
    with WritesRecorded() as writes, httpx.Client() as client:
        response = upload(client, url, [(b"big.png", b"\0" * int(1.5 * MB))])
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert folder_usage(folder).files == before.files  # the partial file was deleted
    assert not outside(writes, folder), outside(writes, folder)


HOSTILE_NAMES = [b"../../../../../../tmp/genimg-escape.txt", b"/etc/cron.d/genimg-escape", b"..\\..\\genimg-escape.txt",
                 b"a\x00b/../../genimg-escape.txt", b"x" * 5000 + b".txt", b"y" * 300 + b".txt", b"..", b".", b"",
                 b"%2e%2e%2fgenimg-escape",
                 "\u202egnp.exe".encode()]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda name: repr(name[:30]))
def test_a_hostile_file_name_is_refused_or_stored_inside_the_temp_folder(served, name):
    url, folder = served
    with WritesRecorded() as writes, httpx.Client() as client:
        response = upload(client, url, [(name, b"payload")])
    assert response.status_code in (200, 400, 413), response.text  # 413: a name past the header size limit
    if response.status_code == 200:
        [stored] = response.json()
        assert Path(stored).resolve().is_relative_to(folder) and Path(stored).read_bytes() == b"payload"
        assert "/" not in Path(stored).name and "\0" not in stored and len(Path(stored).name.encode()) <= 255
        assert any(Path(path).resolve() == Path(stored).resolve() for path in writes)  # the hook saw the write
    assert not outside(writes, folder), outside(writes, folder)
    assert not list(Path("/tmp").glob("genimg-escape*")) and not list(folder.parent.glob("*escape*"))


def test_a_thousand_tiny_uploads_stop_at_the_folders_file_budget(served):
    url, folder = served
    accepted, refusals = 0, []
    with WritesRecorded() as writes, httpx.Client() as client:
        for index in range(1000):
            response = upload(client, url, [(f"tiny-{index}.txt".encode(), str(index).encode())])
            if response.status_code == 200:
                accepted += 1
            else:
                refusals.append((response.status_code, response.text))
    usage = folder_usage(folder)
    assert usage.files <= SMALL.max_folder_files and accepted >= 1 and refusals
    assert {status for status, _ in refusals} == {507} and "upload space is full" in refusals[0][1]
    assert not outside(writes, folder), outside(writes, folder)


def test_one_request_carrying_a_thousand_and_one_files_is_refused(served):
    url, folder = served
    with httpx.Client() as client:
        response = upload(client, url, [(f"{index}.txt".encode(), b"") for index in range(1001)])
    assert response.status_code in (400, 507) and ("Too many files" in response.text or "full" in response.text)


def test_uploads_past_the_byte_budget_are_refused_before_they_are_read(served):
    url, folder = served
    with httpx.Client() as client:
        response = client.post(url + "/gradio_api/upload", content=b"\0" * (SMALL.max_folder_mb * MB + 1),
                               headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)
        assert response.status_code == 507 and "try again in a minute" in response.text
        chunked = client.post(url + "/gradio_api/upload", content=iter([b"--x--\r\n"]),
                              headers={"content-type": "multipart/form-data; boundary=x"})
        assert chunked.status_code == 411  # no Content-Length: the size cannot be checked up front
    assert folder_usage(folder).bytes <= SMALL.max_folder_mb * MB


def test_the_running_server_trims_its_temp_folder_on_its_own(served):
    """The janitor started with the server deletes files past the age limit without any request arriving."""
    _, folder = served
    stale = []
    for index in range(30):
        path = folder / f"stale{index}" / "old.png"
        path.parent.mkdir()
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 2 * SMALL.max_age_s, time.time() - 2 * SMALL.max_age_s))
        stale.append(path)
    deadline = time.monotonic() + 3 * TRIM_EVERY_S
    while any(path.exists() for path in stale) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(path.exists() or path.parent.exists() for path in stale)
