"""What clients may leave on the server's disk: a budget for the temporary folder (Gradio's uploads and outputs).

Gradio bounds one file (``launch(max_file_size=...)``, HTTP 413), 1,000 files per request, and deletes old files on a
schedule (``gr.Blocks(delete_cache=(every_s, age_s))``). Nothing bounds the folder as a whole: a thousand small
uploads a second fill it between two sweeps. ``UploadGuard`` is an ASGI middleware in front of the upload route: an
upload is accepted only if its ``Content-Length`` fits in what is left of the byte budget (uploads in flight count
as used) and the folder holds fewer files than its file budget; otherwise the folder is first swept of files older
than the age limit (and of empty folders), and if that is not enough the client is told the space is full
(HTTP 507). Each refusal says what to do. Nothing here imports gradio: the app passes the folder in.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import InvalidRequest

MB = 1024 * 1024


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
        values = {}
        for field_name, (variable, kind) in names.items():
            if environ.get(variable, "").strip():
                try:
                    values[field_name] = kind(environ[variable])
                except ValueError:
                    raise InvalidRequest(f"{variable}={environ[variable]!r} is not a {kind.__name__}.") from None
                if values[field_name] <= 0:
                    raise InvalidRequest(f"{variable} must be positive, got {environ[variable]!r}.")
        return cls(**values)


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


def sweep(folder: Path, max_age_s: float, now: float | None = None) -> int:
    """Delete files older than ``max_age_s`` and the folders they leave empty; returns how many files went.
    Gradio's own schedule deletes files only, so every upload's hash-named folder would otherwise stay."""
    now, removed = time.time() if now is None else now, 0
    for root, directories, names in os.walk(folder, topdown=False):
        for name in names:
            path = os.path.join(root, name)
            try:
                if now - os.lstat(path).st_mtime > max_age_s:
                    os.remove(path)
                    removed += 1
            except OSError:
                pass
        for name in directories:
            try:
                os.rmdir(os.path.join(root, name))  # only succeeds when empty
            except OSError:
                pass
    return removed


class UploadGuard:
    """ASGI middleware: refuses uploads that would take the temporary folder past its budget (see module doc)."""

    def __init__(self, app, folder: str | Path, limits: UploadLimits, path_suffix: str = "/upload"):
        self.app, self.folder, self.limits, self.path_suffix = app, Path(folder), limits, path_suffix
        self.in_flight_bytes = 0
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
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

    def reserve(self, length: int) -> str | None:
        """Counts ``length`` as in flight and returns None, or says why the folder cannot take it."""
        with self.lock:
            refusal = self.refusal(length)
            if refusal:
                sweep(self.folder, self.limits.max_age_s)
                refusal = self.refusal(length)
            if not refusal:
                self.in_flight_bytes += length
            return refusal

    def refusal(self, length: int) -> str | None:
        usage = folder_usage(self.folder) if self.folder.exists() else FolderUsage(0, 0, 0)
        budget = self.limits.max_folder_mb * MB
        if usage.files >= self.limits.max_folder_files or usage.bytes + self.in_flight_bytes + length > budget:
            return (f"The server's upload space is full ({usage.files} files, {usage.bytes / MB:.1f} of "
                    f"{self.limits.max_folder_mb:g} MB); files older than {self.limits.max_age_s} s are deleted, "
                    "so try again later.")
        return None


async def refuse(send, status: int, message: str) -> None:
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
