"""Seeds derived from what is being computed, so the same data gives the same answer.

Every sampler, classifier, permutation and bootstrap in keel takes a seed made
from stable names: a baseline's fingerprint id, a window's key, a column, a
purpose. The same inputs give the same seed in every process and on every
machine (SHA-256, not Python's salted ``hash``).

>>> derive_seed("b-3f2a", "2026-03-02T00:00:00Z", "domain_classifier")
1865572311
>>> derive_seed("b-3f2a", "2026-03-02T00:00:00Z") == derive_seed("b-3f2a", "2026-03-09T00:00:00Z")
False
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 31-bit seed (fits numpy, scikit-learn and ``random_state``) from the parts' text."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") >> 1
