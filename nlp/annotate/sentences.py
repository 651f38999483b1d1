"""Fast sentence splitting on token arrays (stage: annotate).

The rules of spaCy's ``sentencizer`` (a sentence ends after a sentence-final punctuation token
and any punctuation that follows it), plus a break at blank lines, computed with numpy on the
columns of ``Doc.to_array`` instead of Python objects per token.
"""
from __future__ import annotations

import numpy as np

# Column order of the token array the annotator reads once per doc.
IDX, LENGTH, LOWER, PUNCT, SPACE, FINAL, OPENING = range(7)


def split_sentences(arr: np.ndarray) -> tuple[list[int], list[tuple[int, int]]]:
    """Sentence start tokens and (start, end) character spans of a doc.

    Input: the doc's token array with the columns above (``FINAL``: sentence-final mark or
    blank line; ``OPENING``: an opening quote or bracket, which starts the next sentence).
    Output: ``(starts, chars)``; trailing spaces are left out of each span.
    """
    n = len(arr)
    if n == 0:
        return [], []
    idx, length = arr[:, IDX], arr[:, LENGTH]
    punct, space = arr[:, PUNCT].astype(bool), arr[:, SPACE].astype(bool)
    pending, opening = arr[:, FINAL].astype(bool), arr[:, OPENING].astype(bool)
    starts = [0]
    carry = False
    prev = -2
    # Only tokens that are punctuation or space can open a break: walk those alone.
    for i in np.flatnonzero((pending | punct | space)[:-1]).tolist():
        if i != prev + 1:
            carry = False
        carry = carry or bool(pending[i])
        if carry and (not punct[i + 1] or opening[i + 1]) and not space[i + 1]:
            starts.append(i + 1)
            carry = False
        prev = i
    ends = starts[1:] + [n]
    chars = []
    for a, b in zip(starts, ends):
        last = b - 1
        while last > a and space[last]:
            last -= 1
        chars.append((int(idx[a]), int(idx[last] + length[last])))
    return starts, chars


def split_long_text(text: str, limit: int):
    """Split ``text`` into pieces of at most ``limit`` characters, at paragraph breaks when
    possible (then line breaks, sentence ends, spaces, and as a last resort anywhere).

    Yields ``(offset, piece)`` with ``text[offset:offset+len(piece)] == piece``.
    """
    pos = 0
    n = len(text)
    while pos < n:
        if n - pos <= limit:
            yield pos, text[pos:]
            return
        window = text[pos:pos + limit]
        cut = -1
        for sep in ("\n\n", "\n", ". ", " "):
            i = window.rfind(sep)
            if i > limit // 4:
                cut = i + len(sep)
                break
        if cut <= 0:
            cut = limit
        yield pos, text[pos:pos + cut]
        pos += cut
