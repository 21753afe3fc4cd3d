import pytest

from genimg.text import TextEncoder
from genimg.train.captions import generator_captions, name_neighbours, without_borrowed_names
from genimg.train.common import caption_bank_path
from genimg.train.data import EmojiDataset, captions_for


def test_an_alias_that_is_another_emojis_name_is_dropped_from_the_borrower():
    names = ["cat", "cat face", "rocket"]
    captions = [captions_for("cat", ["cat2"]), captions_for("cat face", ["Cat", "smiley cat"]),
                captions_for("rocket", [])]
    kept = without_borrowed_names(names, captions)
    assert "Cat" not in kept[1] and "smiley cat" in kept[1] and kept[1][0] == "cat face"
    assert kept[0] == captions[0] and kept[2] == captions[2]  # owners keep their own name


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(cache_size=0)


def test_vocabulary_neighbours_go_to_the_one_name_they_mean(encoder):
    names = ["dog", "mobile phone", "rocket", "thumbs up", "thumbs up dark skin tone"]
    captions = [captions_for(name, []) for name in names]
    words = ["puppy", "smartphone", "dog", "the", "however", "rockets"]
    neighbours = name_neighbours(names, captions, words, encoder)
    assert "puppy" in neighbours["dog"] and "smartphone" in neighbours["mobile phone"]
    found = [word for family in neighbours.values() for word in family]
    assert "dog" not in found  # already a caption
    assert "the" not in found and "however" not in found  # near nothing
    assert "thumbs up dark skin tone" not in neighbours  # a family counts once, by its base name


def test_generator_captions_add_neighbours_to_the_base_emoji_only():
    names = ["thumbs up", "thumbs up dark skin tone", "cat", "cat face"]
    dataset = EmojiDataset(None, names, [captions_for("thumbs up", []), captions_for(names[1], []),
                                         captions_for("cat", []), captions_for("cat face", ["cat"])], [""] * 4)
    captions = generator_captions(dataset, {"thumbs up": ["approval", "likes"]})
    assert captions[0][-3:] == ["approval", "an approval", "likes"]  # no "a likes"
    assert captions[1] == dataset.captions[1]
    assert "cat" not in captions[3]


def test_the_caption_bank_cache_is_keyed_by_its_captions():
    one = [["cat", "a cat"], ["dog"]]
    assert caption_bank_path("emoji", one) == caption_bank_path("emoji", [list(c) for c in one])
    assert caption_bank_path("emoji", one) != caption_bank_path("emoji", [["cat"], ["dog"]])
