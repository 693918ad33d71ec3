"""BM25 over the candidate set, fusion, and the hybrid rerank."""

from __future__ import annotations

import pytest

from engine.domain.ranking import Candidate, fuse, lexical_scores, rerank


def test_lexical_scores_are_normalised() -> None:
    docs = ["red canvas sneakers", "black leather bag", "red red red red red", ""]
    scores = lexical_scores("red sneakers", docs)
    assert len(scores) == 4
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] == pytest.approx(max(scores))
    # repeating one query word never beats matching all of them
    assert scores[2] < scores[0]
    assert scores[1] == 0.0 and scores[3] == 0.0


def test_lexical_scores_edge_cases() -> None:
    assert lexical_scores("anything", []) == []
    assert lexical_scores("the of and", ["the shoe"]) == [0.0]  # only stopwords


def test_lexical_score_is_absolute_not_relative() -> None:
    # The best of bad candidates must not be promoted to 1.0.
    scores = lexical_scores("oud perfume 100ml", ["oud oil", "leather wallet"])
    assert 0.0 < scores[0] < 1.0


def test_fuse() -> None:
    assert fuse([1.0, 0.0], [0.0, 1.0], w_dense=0.7) == pytest.approx([0.7, 0.3])
    assert fuse([-0.2, 1.5], [0.5, 0.5], w_dense=0.5) == pytest.approx([0.25, 0.75])  # clipped
    with pytest.raises(ValueError):
        fuse([1.0], [1.0, 0.5])
    with pytest.raises(ValueError):
        fuse([1.0], [1.0], w_dense=1.5)


def test_exact_keyword_match_is_boosted() -> None:
    # Dense slightly prefers the wrong item; the exact model number must win after fusion.
    candidates = [
        Candidate("case-14", "Silicone case for iPhone 14", 0.83),
        Candidate("case-15", "Silicone case for iPhone 15 Pro", 0.80),
        Candidate("charger", "USB-C fast charger 30W", 0.78),
    ]
    ranked = rerank("iphone 15 pro case", candidates)
    assert ranked[0][0] == "case-15"
    assert ranked[0][1] >= ranked[1][1] >= ranked[2][1]


def test_arabic_normalised_match() -> None:
    # Query in Gulf dialect with hamza/ta-marbuta variants; doc in MSA spelling with article.
    candidates = [
        Candidate("abaya", "عباية سوداء كلاسيكية", 0.80),
        Candidate("bag", "الحقيبة اليدوية الجلدية", 0.78),
        Candidate("shoe", "حذاءٌ رياضيّ أسود", 0.77),
    ]
    assert rerank("أبغى شنطه", candidates)[0][0] == "bag"
    assert rerank("ابي جزمة", candidates)[0][0] == "shoe"


def test_rerank_is_stable_on_ties() -> None:
    candidates = [Candidate(str(i), "same text", 0.5) for i in range(5)]
    assert [i for i, _ in rerank("same", candidates)] == ["0", "1", "2", "3", "4"]
    assert rerank("x", []) == []
