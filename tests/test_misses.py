import numpy as np
import pytest

from genimg.evaluate.misses import contact_sheet, family_breakdown, family_markdown, family_of, misses
from genimg.evaluate.prompt_match import PromptSet


@pytest.mark.parametrize("emoji, name, family", [
    ("🇹🇷", "Türkiye", "flags"), ("🦃", "turkey", "animals"), ("🌵", "cactus", "plants"),
    ("🍕", "pizza", "food & drink"), ("👍🏽", "thumbs up: medium skin tone", "skin-tone variants"),
    ("❤️", "red heart", "smileys & emotion"), ("♻️", "recycling symbol", "symbols"), ("", "procedural 3", "other")])
def test_every_emoji_gets_its_unicode_family(emoji, name, family):
    assert family_of(emoji, name) == family


def entry(prompt, target, judge_rank, pixels_rank):
    return {"prompt": prompt, "target": target, "judge_rank": judge_rank, "pixels_rank": pixels_rank,
            "judge_best": "hot dog"}


def test_top5_is_broken_down_per_family_and_worst_families_come_first():
    names, chars = ["ox", "pizza", "Panama"], ["🐂", "🍕", "🇵🇦"]
    details = {"latent": {"names": [entry("ox", "ox", 40, 2), entry("pizza", "pizza", 0, 0),
                                    entry("Panama", "Panama", 9, 12)]}}
    table = family_breakdown(details, names, chars)["latent"]["names"]
    assert table["animals"] == {"count": 1, "judge_top5": 0.0, "pixels_top5": 1.0}
    assert table["food & drink"]["judge_top5"] == 1.0 and table["flags"]["pixels_top5"] == 0.0
    rows = family_markdown({"latent": {"names": table}}).splitlines()
    assert [row.split(" | ")[0] for row in rows[4:]] == ["| animals", "| flags", "| food & drink"]  # worst first
    assert rows[5].startswith("| flags | 1 | 0 / 0 |") and rows[-1].startswith("| food & drink | 1 | 100 / 100 |")


def test_the_contact_sheet_shows_each_miss_and_nothing_when_all_hit():
    entries = [entry("ox", "ox", 40, 2), entry("pizza", "pizza", 0, 0), entry("Panama", "Panama", 9, 12)]
    assert misses(entries) == [0, 2]
    dataset_images = np.full((3, 64, 64, 3), 255, np.uint8)
    generated = np.zeros((3, 64, 64, 3), np.uint8)
    sheet = contact_sheet(entries, PromptSet("names", ["ox", "pizza", "Panama"], [0, 1, 2]), generated,
                          dataset_images, columns=6)
    assert sheet.size == (6 * (2 * 64 + 8), 64 + 26)
    pixels = np.asarray(sheet)
    assert pixels[10, 10].tolist() == [255, 255, 255] and pixels[10, 64 + 10].tolist() == [0, 0, 0]
    assert contact_sheet([entries[1]], PromptSet("names", ["pizza"], [1]), generated[:1], dataset_images) is None
