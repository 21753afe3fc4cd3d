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
