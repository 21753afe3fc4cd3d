import pytest
import torch

from genimg.text import CONTEXT_TOKENS, EMBEDDING_DIM, TextEncoder


def test_encodings_have_the_context_shape_and_unit_pooled_vectors():
    encoder = TextEncoder()
    text = encoder.encode(["a slice of pizza", "rocket"])
    assert text.tokens.shape == (2, CONTEXT_TOKENS, EMBEDDING_DIM)
    assert torch.allclose(text.pooled.norm(dim=-1), torch.ones(2), atol=1e-4)
    assert text.truncated == [False, False]


def test_similar_prompts_are_closer_than_unrelated_ones():
    pooled = TextEncoder().encode(["a cute puppy", "dog face", "a rocket ship"]).pooled
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2]


def test_cache_returns_the_same_embedding_and_long_prompts_are_flagged():
    encoder = TextEncoder(cache_size=2)
    first = encoder.encode(["red heart"]).tokens
    again = encoder.encode(["red heart"]).tokens
    assert torch.equal(first, again)
    long_prompt = " ".join(["very"] * 60) + " long prompt"
    assert encoder.encode([long_prompt]).truncated == [True]
    encoder.encode(["a", "b", "c"])
    assert len(encoder._cache) == 2


def test_sentence_embeddings_are_the_padded_passes_from_each_prompts_own_tokens():
    """The pooler runs on the prompts padded to the longest of the call only; masking makes that the padded pass's
    sentence embedding. Cached per prompt like encode, truncation flagged the same way."""
    encoder = TextEncoder(cache_size=3)
    long_prompt = " ".join(["very"] * 60) + " long prompt"
    prompts = ["rocket", "a slice of pizza with extra cheese", long_prompt, "rocket"]
    pooled, truncated = encoder.sentence_embeddings(prompts)
    reference = TextEncoder().encode(prompts)
    torch.testing.assert_close(pooled, reference.pooled, atol=2e-6, rtol=0)
    assert truncated == [False, False, True, False] == reference.truncated
    alone, _ = encoder.sentence_embeddings(["a slice of pizza with extra cheese"])
    assert torch.equal(alone[0], pooled[1])  # from the cache
    encoder.sentence_embeddings(["a", "b", "c", "d"])
    assert len(encoder._pooled_cache) == 3
    encoder.clear_cache()
    assert len(encoder._pooled_cache) == 0


def test_the_openvino_int8_text_engine_stays_within_a_cosine_bound_of_fp32():
    """text_engine="openvino-int8": MiniLM's weights in int8 (NNCF weight compression), converted with its pooling.
    Every prompt's sentence embedding within cosine 0.995 of the fp32 torch one, its token embeddings on average
    within 0.99, and concept matching picks the same emoji."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from genimg.accel import prepare_text_embedder
    from genimg.concepts import ConceptIndex
    from genimg.options import SpeedOptions

    prompts = ["a slice of pizza", "a cute puppy", "red heart", "rocket", "grinning face with big eyes",
               "snowman without snow", "a very very long prompt about a cat sitting on a red chair in the sun"]
    reference = TextEncoder().encode(prompts)
    encoder, notes = TextEncoder(), []
    encoder.embedder = prepare_text_embedder(encoder.embedder, SpeedOptions(device="cpu",
                                                                            text_engine="openvino-int8").validated(),
                                             notes)
    encoder.one_prompt_per_call = True
    encoder.pooler = prepare_text_embedder(encoder.pooler, SpeedOptions(device="cpu",
                                                                        text_engine="openvino-int8").validated(),
                                           notes, name="text pooler")
    fast = encoder.encode(prompts)
    assert type(encoder.embedder).__name__ == "OpenVINOModule" and encoder.embedder.quantize == "int8"
    assert any("text encoder" in note for note in notes)
    assert fast.tokens.shape == reference.tokens.shape and fast.tokens.dtype == reference.tokens.dtype
    pooled_cosine = (fast.pooled * reference.pooled).sum(-1)
    assert pooled_cosine.min() > 0.995
    token_cosine = torch.nn.functional.cosine_similarity(fast.tokens, reference.tokens, dim=-1)
    assert token_cosine.mean() > 0.99
    # The pooler: one compiled model for every batch and prompt length (no padding), as close to fp32.
    pooled = torch.cat([encoder.sentence_embeddings([prompt])[0] for prompt in prompts[:3]]
                       + [encoder.sentence_embeddings(prompts[3:])[0]])
    stats = encoder.pooler.stats
    assert stats["compiled"] == 1 and stats["converted"] + stats["loaded_from_cache"] == 1
    assert (pooled * reference.pooled).sum(-1).min() > 0.995
    index = ConceptIndex.load()
    assert [m.concept for m in index.match(prompts, fast.pooled)] == \
        [m.concept for m in index.match(prompts, pooled)] == \
        [m.concept for m in index.match(prompts, reference.pooled)]


def test_the_torch_text_engine_is_left_as_it_is():
    from genimg.accel import prepare_text_embedder
    from genimg.options import SpeedOptions

    encoder = TextEncoder()
    assert prepare_text_embedder(encoder.embedder, SpeedOptions(device="cpu").validated(), []) is encoder.embedder
