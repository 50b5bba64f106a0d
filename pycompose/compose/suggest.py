"""Hints of the form "did you mean ...?" for misspelt keys and values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """Return the candidate most like ``word``, or None when nothing is close enough.

    A candidate that differs only in letter case wins outright (``Image`` -> ``image``);
    otherwise difflib's similarity ratio decides, and ``cutoff`` (0..1) is the least
    similarity accepted.
    """
    pool = sorted({c for c in candidates if c != word})
    lowered = word.lower()
    for candidate in pool:
        if candidate.lower() == lowered:
            return candidate
    # Compare case-folded so that "IMGAE" is as close to "image" as "imgae" is.
    by_folded: dict[str, str] = {}
    for candidate in pool:
        by_folded.setdefault(candidate.lower(), candidate)
    found = difflib.get_close_matches(lowered, list(by_folded), n=1, cutoff=cutoff)
    return by_folded[found[0]] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return `` (did you mean "x"?)`` for the closest candidate, or an empty string."""
    match = closest(word, candidates)
    return f' (did you mean "{match}"?)' if match is not None else ""
