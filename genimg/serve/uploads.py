"""What clients may leave on the server's disk: a budget for the temporary folder (Gradio's uploads and outputs).

Gradio bounds one file (``launch(max_file_size=...)``, HTTP 413), 1,000 files per request, and deletes old files on a
schedule (``gr.Blocks(delete_cache=(every_s, age_s))``), files only: every upload and output leaves a hash-named
folder behind. Nothing bounds the folder as a whole: the soak run wrote 3,240 files in 3,241 folders in under three
minutes, and a thousand small uploads a second fill it between two sweeps. ``TempFolderGuard`` is an ASGI middleware
that keeps the folder within a byte and file budget:

- every ``TRIM_EVERY_S`` seconds (a thread started and stopped with the server) and before an upload that would not
  fit, ``trim`` deletes files older than the age limit, then the oldest files until the folder is back under 90% of
  its budget (never files younger than ``KEEP_NEWEST_S``: a client fetches its images within seconds), then the
  folders left empty;
- an upload is accepted only if its ``Content-Length`` fits in what is left (uploads in flight count as used) and
  the folder holds fewer files than its budget; otherwise the client is told the space is full (HTTP 507).

Each refusal says what to do. Nothing here imports gradio: the app passes the folder in.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from genimg.serve.limits import positive_numbers_from_env

MB = 1024 * 1024
TRIM_EVERY_S = 10.0
KEEP_NEWEST_S = 60.0


@dataclass(frozen=True)
class UploadLimits:
    """The temporary folder's limits; ``from_env`` reads the GENIMG_* variables named below."""

    max_file_mb: float = 10.0  # GENIMG_MAX_UPLOAD_MB: one uploaded file (the models draw 64x64 images)
    max_folder_mb: float = 512.0  # GENIMG_TEMP_MAX_MB: uploads and outputs together
    max_folder_files: int = 2000  # GENIMG_TEMP_MAX_FILES: files in the folder (small uploads cost inodes, not bytes)
    max_age_s: int = 1800  # GENIMG_TEMP_MAX_AGE_S: files older than this are deleted ...
    sweep_every_s: int = 300  # ... on this schedule (Gradio's delete_cache), and whenever the budget is reached

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * MB)

    @property
    def delete_cache(self) -> tuple[int, int]:
        """``gr.Blocks(delete_cache=...)``: (how often, how old)."""
        return self.sweep_every_s, self.max_age_s

    @classmethod
    def from_env(cls, environ=os.environ) -> "UploadLimits":
        names = {"max_file_mb": ("GENIMG_MAX_UPLOAD_MB", float), "max_folder_mb": ("GENIMG_TEMP_MAX_MB", float),
                 "max_folder_files": ("GENIMG_TEMP_MAX_FILES", int), "max_age_s": ("GENIMG_TEMP_MAX_AGE_S", int)}
        return cls(**positive_numbers_from_env(names, environ))


@dataclass(frozen=True)
class FolderUsage:
    bytes: int
    files: int
    folders: int


def folder_usage(folder: Path) -> FolderUsage:
    """Bytes and files under ``folder`` (symlinks counted as files, never followed)."""
    size = files = folders = 0
    for _, directories, names in os.walk(folder):
        folders += len(directories)
        for name in names:
            files += 1
            try:
                size += os.lstat(os.path.join(_, name)).st_size
            except OSError:  # deleted meanwhile
                pass
    return FolderUsage(size, files, folders)


def trim(folder: Path, limits: "UploadLimits", now: float | None = None) -> int:
    """Deletes what the budget says must go (see the module doc); returns how many files were deleted."""
    now, entries = time.time() if now is None else now, []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.lstat(path)
            except OSError:  # deleted meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
    entries.sort()
    files, size = len(entries), sum(entry[1] for entry in entries)
    max_files, max_bytes = 0.9 * limits.max_folder_files, 0.9 * limits.max_folder_mb * MB
    removed = 0
    for mtime, file_size, path in entries:
        too_old = now - mtime > limits.max_age_s
        over_budget = (files > max_files or size > max_bytes) and now - mtime > KEEP_NEWEST_S
        if not (too_old or over_budget):
            break  # sorted oldest first: every later file is younger
        try:
            os.remove(path)
        except OSError:
            continue
        files, size, removed = files - 1, size - file_size, removed + 1
    remove_empty_folders(folder)
    return removed


def remove_empty_folders(folder: Path) -> None:
    for root, directories, _ in os.walk(folder, topdown=False):
        for name in directories:
            try:
                os.rmdir(os.path.join(root, name))  # only succeeds when empty
            except OSError:
                pass


class Janitor(threading.Thread):
    """Trims the folder every ``every_s`` seconds until stopped."""

    def __init__(self, folder: Path, limits: "UploadLimits", lock: threading.Lock, every_s: float = TRIM_EVERY_S):
        super().__init__(daemon=True, name="genimg-temp-janitor")
        self.folder, self.limits, self.lock, self.every_s = folder, limits, lock, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            if self.folder.exists():
                with self.lock:
                    trim(self.folder, self.limits)


class TempFolderGuard:
    """ASGI middleware: trims the temporary folder while the server runs, and refuses uploads that would take it past
    its budget (see the module doc)."""

    def __init__(self, app, folder: str | Path, limits: UploadLimits, path_suffix: str = "/upload"):
        self.app, self.folder, self.limits, self.path_suffix = app, Path(folder), limits, path_suffix
        self.in_flight_bytes = 0
        self.lock = threading.Lock()
        self.janitor: Janitor | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, self.watch_lifespan(receive), send)
        if scope["type"] != "http" or scope["method"] != "POST" or \
                not scope["path"].rstrip("/").endswith(self.path_suffix):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is None or not length.isdigit():
            return await refuse(send, 411, "An upload must state its Content-Length.")
        length = int(length)
        refusal = await asyncio.to_thread(self.reserve, length)
        if refusal:
            return await refuse(send, 507, refusal)
        try:
            await self.app(scope, receive, send)
        finally:
            with self.lock:
                self.in_flight_bytes -= length

    def watch_lifespan(self, receive):
        """The janitor runs from the server's start to its shutdown."""
        async def watched_receive():
            message = await receive()
            if message["type"] == "lifespan.startup" and self.janitor is None:
                self.janitor = Janitor(self.folder, self.limits, self.lock)
                self.janitor.start()
            elif message["type"] == "lifespan.shutdown" and self.janitor is not None:
                self.janitor.stopped.set()
            return message

        return watched_receive

    def reserve(self, length: int) -> str | None:
        """Counts ``length`` as in flight and returns None, or says why the folder cannot take it."""
        with self.lock:
            refusal = self.refusal(length)
            if refusal:
                trim(self.folder, self.limits)
                refusal = self.refusal(length)
            if not refusal:
                self.in_flight_bytes += length
            return refusal

    def refusal(self, length: int) -> str | None:
        usage = folder_usage(self.folder) if self.folder.exists() else FolderUsage(0, 0, 0)
        budget = self.limits.max_folder_mb * MB
        if usage.files >= self.limits.max_folder_files or usage.bytes + self.in_flight_bytes + length > budget:
            return (f"The server's upload space is full ({usage.files} files, {usage.bytes / MB:.1f} of "
                    f"{self.limits.max_folder_mb:g} MB, all of them recent); try again in a minute.")
        return None


async def refuse(send, status: int, message: str) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
