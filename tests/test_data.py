import pytest

from genimg.train.data import IMAGE_SIZE, captions_for, find_font, load_dataset, procedural_dataset


def test_procedural_dataset_is_small_white_backed_and_captioned():
    dataset = procedural_dataset()
    assert dataset.images.shape == (24, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert (dataset.images[:, 0, 0] == 255).all()  # white corners
    assert dataset.captions[0][0] == dataset.names[0]


def test_captions_include_name_aliases_and_phrasings():
    captions = captions_for("pizza", ["slice of pizza"])
    assert captions[:2] == ["pizza", "slice of pizza"]
    assert "a pizza" in captions and "pizza emoji" in captions


@pytest.mark.slow
@pytest.mark.skipif(find_font() is None, reason="Noto Color Emoji not installed (apt-get install fonts-noto-color-emoji)")
def test_emoji_dataset_renders_every_single_glyph_emoji():
    dataset = load_dataset("emoji")
    assert 3500 < len(dataset) < 4200
    assert dataset.images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3)
    pizza = dataset.names.index("pizza")
    assert dataset.chars[pizza] == "\U0001F355"
    assert dataset.images[pizza].std() > 20  # a drawn glyph, not a blank or a missing-glyph box
    assert len(set(dataset.names)) == len(dataset)
