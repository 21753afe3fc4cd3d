"""The temporary folder's budget: limits from the environment, usage, and the sweep that frees old files."""
import os
import time

import pytest

from genimg.errors import InvalidRequest
from genimg.serve.uploads import MB, UploadGuard, UploadLimits, folder_usage, sweep


def test_limits_come_from_the_environment_and_bad_values_say_which_variable():
    limits = UploadLimits.from_env({"GENIMG_MAX_UPLOAD_MB": "2", "GENIMG_TEMP_MAX_FILES": "10"})
    assert limits.max_file_bytes == 2 * MB and limits.max_folder_files == 10
    assert limits.delete_cache == (limits.sweep_every_s, limits.max_age_s)
    with pytest.raises(InvalidRequest, match="GENIMG_TEMP_MAX_MB"):
        UploadLimits.from_env({"GENIMG_TEMP_MAX_MB": "lots"})
    with pytest.raises(InvalidRequest, match="must be positive"):
        UploadLimits.from_env({"GENIMG_TEMP_MAX_AGE_S": "0"})


def test_sweep_deletes_old_files_and_the_folders_they_leave_empty(tmp_path):
    old, new = tmp_path / "aaa" / "old.png", tmp_path / "bbb" / "new.png"
    for path in (old, new):
        path.parent.mkdir()
        path.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert folder_usage(tmp_path).files == 2 and folder_usage(tmp_path).bytes == 200
    assert sweep(tmp_path, max_age_s=3600) == 1
    assert not old.parent.exists() and new.exists() and folder_usage(tmp_path).files == 1


def test_the_guard_counts_uploads_in_flight_against_the_byte_budget(tmp_path):
    guard = UploadGuard(None, tmp_path, UploadLimits(max_folder_mb=1, max_folder_files=5))
    assert guard.reserve(600_000) is None  # in flight, not yet on disk
    assert "upload space is full" in guard.reserve(600_000)
    guard.in_flight_bytes = 0
    for index in range(5):
        (tmp_path / f"{index}.txt").write_text("x")
    assert "5 files" in guard.reserve(10)
