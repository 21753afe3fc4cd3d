"""The temporary folder's budget: limits from the environment, usage, and the trim that keeps it within them."""
import os
import time

import pytest

from genimg.errors import InvalidRequest
from genimg.serve.uploads import KEEP_NEWEST_S, MB, TempFolderGuard, UploadLimits, folder_usage, trim


def test_limits_come_from_the_environment_and_bad_values_say_which_variable():
    limits = UploadLimits.from_env({"GENIMG_MAX_UPLOAD_MB": "2", "GENIMG_TEMP_MAX_FILES": "10"})
    assert limits.max_file_bytes == 2 * MB and limits.max_folder_files == 10
    assert limits.delete_cache == (limits.sweep_every_s, limits.max_age_s)
    with pytest.raises(InvalidRequest, match="GENIMG_TEMP_MAX_MB"):
        UploadLimits.from_env({"GENIMG_TEMP_MAX_MB": "lots"})
    with pytest.raises(InvalidRequest, match="must be positive"):
        UploadLimits.from_env({"GENIMG_TEMP_MAX_AGE_S": "0"})


def make_files(folder, ages_s: list[float], size: int = 100) -> list:
    """One file per age, each in its own folder as Gradio stores them."""
    paths = []
    for index, age in enumerate(ages_s):
        path = folder / f"hash{index}" / "image.png"
        path.parent.mkdir()
        path.write_bytes(b"x" * size)
        os.utime(path, (time.time() - age, time.time() - age))
        paths.append(path)
    return paths


def test_trim_deletes_old_files_and_the_folders_they_leave_empty(tmp_path):
    old, new = make_files(tmp_path, [7200, 10])
    assert folder_usage(tmp_path).files == 2 and folder_usage(tmp_path).bytes == 200
    assert trim(tmp_path, UploadLimits(max_age_s=3600)) == 1
    assert not old.parent.exists() and new.exists() and folder_usage(tmp_path).files == 1


def test_trim_brings_a_full_folder_under_budget_oldest_first_but_keeps_recent_files(tmp_path):
    ages = [KEEP_NEWEST_S + 100 - index for index in range(20)] + [5.0] * 10  # 20 older files, 10 fresh ones
    paths = make_files(tmp_path, ages)
    assert trim(tmp_path, UploadLimits(max_folder_files=20)) == 12  # down to 90% of 20 files
    assert [path.exists() for path in paths] == [False] * 12 + [True] * 18
    assert folder_usage(tmp_path).folders == 18  # the emptied folders went too
    assert trim(tmp_path, UploadLimits(max_folder_files=5)) == 8  # the 10 fresh ones stay, even over budget
    assert all(path.exists() for path in paths[20:])


def test_the_guard_counts_uploads_in_flight_against_the_byte_budget(tmp_path):
    guard = TempFolderGuard(None, tmp_path, UploadLimits(max_folder_mb=1, max_folder_files=5))
    assert guard.reserve(600_000) is None  # in flight, not yet on disk
    assert "upload space is full" in guard.reserve(600_000)
    guard.in_flight_bytes = 0
    for index in range(5):
        (tmp_path / f"{index}.txt").write_text("x")
    assert "5 files" in guard.reserve(10)
