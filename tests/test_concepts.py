import numpy as np
import pytest
import torch

import genimg
from genimg.concepts import NAME_CONTEXTS, ConceptIndex, NameContexts
from genimg.errors import ModelLoadError
from genimg.options import SpeedOptions
from genimg.registry import GeneratorCache
from genimg.text import TextEncoder


def unit_rows(count: int, dim: int = 384, seed: int = 0) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(count, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_the_nearest_caption_names_the_concept_and_survives_int8_storage(tmp_path):
    embeddings = unit_rows(6)
    index = ConceptIndex(["cat", "dog", "sun"], ["cat", "a kitty", "dog", "a puppy", "sun", "a sunny day"],
                         torch.tensor([0, 0, 1, 1, 2, 2]), embeddings)
    index.save(tmp_path)
    loaded = ConceptIndex.load(tmp_path)
    queries = torch.nn.functional.normalize(embeddings[[3, 1, 5]] + 0.1 * unit_rows(3, seed=1), dim=-1)
    matches = loaded.match(["puppy!", "kitty?", "sunny"], queries)
    assert [m.concept for m in matches] == ["dog", "cat", "sun"]
    assert [m.caption for m in matches] == ["a puppy", "a kitty", "a sunny day"]
    assert all(0.5 < m.similarity <= 1.0 for m in matches)
    assert (tmp_path / "embeddings.safetensors").stat().st_size < 6 * 384 + 1024  # int8: one byte a value


def test_a_missing_or_broken_index_is_a_clear_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="match_concepts=False"):
        ConceptIndex.load(tmp_path)
    (tmp_path / "concepts.json").write_text("{not json")
    (tmp_path / "embeddings.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="train concepts"):
        ConceptIndex.load(tmp_path)


def test_the_shipped_index_maps_paraphrases_to_emoji_and_names_to_themselves():
    index, encoder = ConceptIndex.load(), TextEncoder()
    prompts = ["a slice of pizza", "a yellow banana", "the flag of Japan", "rocket", "red heart", "grinning face"]
    matches = index.match(prompts, encoder.encode(prompts).pooled)
    assert [m.concept for m in matches] == ["pizza", "banana", "Japan", "rocket", "red heart", "grinning face"]
    assert matches[3].similarity == pytest.approx(1.0, abs=0.02)  # a name is one of its own captions
    assert len(index.names) > 3000 and len(index.captions) > len(index.names)


def test_a_generator_draws_the_matched_emoji_and_says_so():
    matching, plain = genimg.load("gan", device="cpu"), genimg.load("gan", device="cpu", match_concepts=False)
    result = matching.generate("a slice of pizza", seed=3)
    assert result.info["prompt"] == "a slice of pizza"
    assert result.info["drawn_as"]["concept"] == "pizza"
    assert result.info["drawn_as"]["matched_caption"] == "a pizza"
    drawn = np.asarray(result.images[0])
    # The name's context comes from the index's table (int8 tokens, fp16 sentence embedding): a level at most.
    named = np.asarray(plain.generate("pizza", seed=3).images[0])
    assert np.abs(drawn.astype(int) - named).max() <= 2
    unmatched = plain.generate("a slice of pizza", seed=3)
    assert "drawn_as" not in unmatched.info
    assert not np.array_equal(drawn, np.asarray(unmatched.images[0]))


def test_a_batch_of_requests_is_matched_one_by_one():
    generator = genimg.load("vae", device="cpu")
    results = generator.generate_batch(["a yellow banana", "a glazed donut"], [1, 2])
    assert [r.info["drawn_as"]["concept"] for r in results] == ["banana", "doughnut"]
    assert generator.generate("a yellow banana", batch_size=2).info["drawn_as"]["concept"] == "banana"


def test_a_word_shared_by_two_emoji_draws_its_common_sense_and_says_so():
    index, encoder = ConceptIndex.load(), TextEncoder()
    prompts = ["turkey", "Turkey flag", "a turkey", "a slice of pizza"]
    bird, flag, article, pizza = index.match(prompts, encoder.encode(prompts).pooled)
    # "turkey" is the bird's name and an alias of the flag of Türkiye; MiniLM is uncased, so both captions tie.
    assert bird.concept == "turkey" and bird.ambiguous_with == ("Türkiye",)
    assert bird.as_info()["ambiguous_with"] == ["Türkiye"]
    assert flag.concept == "Türkiye" and not flag.ambiguous_with  # one more word picks the other sense
    assert article.concept == "turkey"
    assert not pizza.ambiguous_with and "ambiguous_with" not in pizza.as_info()


def test_near_ties_prefer_an_emoji_matched_by_its_own_name_over_an_alias():
    embeddings = unit_rows(3)
    # Captions 0 and 1 are the same words (one embedding): an alias of "Türkiye" and the name of "turkey".
    index = ConceptIndex(["Türkiye", "turkey"], ["Turkey", "turkey", "a turkey"], torch.tensor([0, 1, 1]),
                         torch.stack([embeddings[0], embeddings[0], embeddings[2]]))
    match, = index.match(["turkey"], embeddings[:1])
    assert (match.concept, match.caption, match.ambiguous_with) == ("turkey", "turkey", ("Türkiye",))
    far = torch.nn.functional.normalize(embeddings[0] + 3 * unit_rows(1, seed=5)[0], dim=-1)
    weak, = index.match(["something else"], far[None])
    assert weak.similarity < 0.8 and weak.ambiguous_with == ()  # a weak neighbour is no sense of the words


def test_the_names_contexts_table_round_trips_in_int8_and_refuses_what_it_does_not_hold(tmp_path):
    tokens = torch.randn((3, 24, 384), generator=torch.Generator().manual_seed(0))
    pooled = unit_rows(3)
    NameContexts.save(tmp_path / NAME_CONTEXTS, tokens, pooled)
    table = NameContexts(tmp_path / NAME_CONTEXTS, ["cat", "dog", "sun"])
    assert table.context_tokens == 24
    found_tokens, found_pooled = table.lookup(["sun", "cat", "sun"])
    assert found_tokens.shape == (3, 24, 384) and found_tokens.dtype == torch.float32
    step = tokens.abs().amax(dim=-1, keepdim=True) / 127  # one int8 step per token
    # Half a step of rounding, and the fp16 scale's own rounding (at most 127 x 2^-11 of a step).
    assert ((found_tokens - tokens[[2, 0, 2]]).abs() <= 0.57 * step[[2, 0, 2]]).all()
    torch.testing.assert_close(found_pooled, pooled[[2, 0, 2]], atol=1e-3, rtol=0)
    assert table.lookup(["cat", "moon"]) is None  # one unknown name: the caller encodes them all
    with pytest.raises(ModelLoadError, match="holds 3 names, the index 2"):
        NameContexts(tmp_path / NAME_CONTEXTS, ["cat", "dog"])
    (tmp_path / "broken.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="train concepts"):
        NameContexts(tmp_path / "broken.safetensors", ["cat"])


def test_the_shipped_table_is_the_encoders_own_encoding_of_every_name():
    index, encoder = ConceptIndex.load(), TextEncoder()
    assert index.name_contexts is not None and index.name_contexts.disagreement(encoder) is None
    names = ["pizza", "red heart", "grinning face with big eyes", index.names[-1]]
    tokens, pooled = index.name_contexts.lookup(names)
    encoded = encoder.encode(names)
    assert torch.nn.functional.cosine_similarity(tokens, encoded.tokens, dim=-1).min() > 0.999
    assert (pooled * encoded.pooled).sum(-1).min() > 0.9999


def test_a_generator_reads_a_matched_names_context_instead_of_encoding_it(monkeypatch):
    generator = GeneratorCache().get("gan", SpeedOptions(device="cpu"), None)
    assert generator.concepts.name_contexts is not None
    encoded = []
    monkeypatch.setattr(generator.text, "encode", lambda prompts: encoded.append(prompts))
    result = generator.generate("a freshly baked pizza slice", seed=1)
    assert result.info["drawn_as"]["concept"] == "pizza" and encoded == []  # one pass (the prompt's pooler) only


def test_a_table_that_disagrees_with_the_encoder_is_left_unused_with_a_note(tmp_path, monkeypatch):
    shipped = ConceptIndex.load()
    for name in ("concepts.json", "embeddings.safetensors"):
        (tmp_path / name).symlink_to(genimg.concepts.CONCEPTS / name)
    names = len(shipped.names)  # a table from other weights: the right shape, the wrong values
    NameContexts.save(tmp_path / NAME_CONTEXTS, torch.randn((names, 24, 384)), unit_rows(names))
    load = ConceptIndex.load.__func__
    monkeypatch.setattr(ConceptIndex, "load", classmethod(lambda cls, folder=None: load(cls, tmp_path)))
    generator = GeneratorCache().get("gan", SpeedOptions(device="cpu"), None)
    assert generator.concepts.name_contexts is None
    assert any("names' contexts table was not used" in note and "cosine" in note for note in generator.notes)
    plain = genimg.load("gan", device="cpu", match_concepts=False)
    drawn = generator.generate("a slice of pizza", seed=3)
    assert drawn.info["drawn_as"]["concept"] == "pizza"
    assert np.array_equal(np.asarray(drawn.images[0]), np.asarray(plain.generate("pizza", seed=3).images[0]))
