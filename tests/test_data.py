import pytest

from genimg.train.data import (
    IMAGE_SIZE, captions_for, find_font, load_dataset, procedural_dataset, sampling_weights, skin_tone_family,
)


def test_procedural_dataset_is_small_white_backed_and_captioned():
    dataset = procedural_dataset()
    assert dataset.images.shape == (24, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert (dataset.images[:, 0, 0] == 255).all()  # white corners
    assert dataset.captions[0][0] == dataset.names[0]


def test_captions_include_name_aliases_and_phrasings():
    captions = captions_for("pizza", ["slice of pizza"])
    assert captions[:2] == ["pizza", "slice of pizza"]
    assert "a pizza" in captions and "pizza emoji" in captions


def test_skin_tone_variants_share_their_base_emojis_family():
    assert skin_tone_family("thumbs up medium-dark skin tone") == "thumbs up"
    assert skin_tone_family("kiss man man dark skin tone light skin tone") == "kiss man man"
    assert skin_tone_family("handshake, medium-light skin tone") == "handshake"
    assert skin_tone_family("dark sunglasses") == "dark sunglasses"


def test_sqrt_family_balance_draws_each_variant_less_and_keeps_a_family_above_one_emoji():
    names = ["thumbs up", *(f"thumbs up {tone} skin tone" for tone in ("light", "medium", "dark")), "rocket"]
    assert sampling_weights(names).tolist() == [1.0] * 5
    weights = sampling_weights(names, "sqrt-family")
    assert weights.tolist() == [0.5, 0.5, 0.5, 0.5, 1.0]  # a family of 4: each 1/2, together 2x a lone emoji
    with pytest.raises(ValueError, match="sqrt-family"):
        sampling_weights(names, "by-colour")


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
