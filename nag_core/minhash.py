"""MinHash signatures, LSH banding and the S-curve, vectorised over many documents.

Signatures are bit-for-bit those of ``datasketch.MinHash`` 2.x (default ``affine32``
scheme) fed one UTF-8 shingle at a time with ``update``: each shingle is hashed with
``sha1_hash32`` (the first 4 bytes of its SHA-1, little-endian), pre-mixed with the
32-bit MurmurHash3 finaliser, then permuted with ``a_k * h + b_k mod 2**32`` using the
``(a, b)`` parameters that ``datasketch.MinHash(num_perm, seed)`` itself generates.
Only the arithmetic is batched: every shingle of a batch of documents becomes one row
of a ``(shingles, num_perm)`` uint32 matrix and ``np.minimum.reduceat`` takes the
per-document minimum. datasketch 1.x used another ("legacy") scheme whose signatures
differ, so :attr:`MinHashSettings.hashing_scheme` records the version and the scheme,
and it is part of :attr:`MinHashSettings.settings_hash`.

Banding: a signature is cut into ``bands`` bands of ``rows`` consecutive values (as
``datasketch.MinHashLSH`` does); two documents become candidates when all ``rows``
values of at least one band agree. For a pair with Jaccard similarity ``s``::

    P(candidate | s) = 1 - (1 - s**rows) ** bands

The S-curve crosses 1/2 near the implied threshold ``(1/bands) ** (1/rows)``.

Short texts (``short_text_words``): word n-grams make a small edit expensive in a short
text. A text of ``w`` words has ``m = w - n + 1`` word n-grams; a k-token edit (isolated
substitutions) removes about ``k*n`` of them and adds as many, so the shingle Jaccard is::

    J_n(w, k) ~= (m - k*n) / (m + k*n)

With n = 5 a one-token edit keeps ``J_5 >= verify_threshold = 0.8`` only when ``m >= 45``
(w >= 49 words), a two-token edit only from w >= 94: a 20-word snippet with one changed
identifier has ``J_5 = (16 - 5) / (16 + 5) = 0.52``, a band candidate with probability
``P(0.52) = 0.33`` and then rejected by the exact check anyway, although its word-set
Jaccard is ``(w - k) / (w + k) = 19/21 = 0.90``. So a "word" text of fewer than
``short_text_words`` words is shingled as its **words plus its word bigrams**: ``2w - 1``
shingles, of which a k-token edit changes about ``3k`` (the word and its two bigrams)::

    J_12(w, k) ~= (2w - 1 - 3k) / (2w - 1 + 3k)

At the goal's edge, word-set J = 0.9 (k = w/19), this is ``35/41 = 0.85`` >= 0.8: the pair
passes the exact check and is a candidate with ``P(0.85) = 0.99995``, so recall at word-set
J >= 0.9 is limited only by edits that cross the length boundary. Words alone would give
the word-set J itself, but ignore order, and merged code lines made of the same tokens in
another order; the bigrams make a reordering cost shingles (benchmarks/results/dedup.md).
The default boundary, 50, is where 5-grams start to survive one edit:
``(m - n)/(m + n) >= t`` needs ``w >= n(1 + t)/(1 - t) + n - 1 = 49`` for n = 5, t = 0.8.
From 50 words on the 5-grams stay (datasketch-identical to the plain rule): longer texts
that share a vocabulary (templates, clause lists) are told apart by word order, and a
boundary of 100 merged such legal sections of the demo pool. Texts of at most
``shingle_size`` words stay one whole-text shingle: there a one-token edit gives a word-set
J of at most 4/6 < 0.8 anyway. A word or bigram has at most one space and a 5-gram has
four, so a pair straddling the boundary (an insertion or deletion at exactly
``short_text_words`` words; substitutions keep the length) shares no shingle and is missed.
``short_text_words: 0`` turns the rule off (the plain n-gram rule at every length).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import datasketch
import numpy as np

from nag_core.errors import NagInputError
from nag_core.hashing import digest

SHINGLE_TYPES = ("word", "char")
KEEP_RULES = ("lowest_docid", "best_signal")
_NON_WORD = re.compile(r"[^\w\s]+")
_MAX32 = np.uint32(0xFFFFFFFF)
SHORT_TEXT_WORDS = 50  # below this many words, a "word" text is shingled as words + bigrams (module docstring)
_CHUNK_ROWS = 1 << 15  # shingles per matrix block: 32768 x num_perm x 4 bytes (~16 MB at 128)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def normalize_nfkc_casefold_ws(text: str) -> str:
    """NFKC, casefold, every run of Unicode whitespace -> one space, stripped."""
    return _collapse(unicodedata.normalize("NFKC", text).casefold())


def normalize_nfkc_casefold_ws_nopunct(text: str) -> str:
    """As :func:`normalize_nfkc_casefold_ws`, and punctuation/symbols (``[^\\w\\s]``) -> space."""
    return _collapse(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()))


NORMALIZERS = {
    "nfkc_casefold_ws": normalize_nfkc_casefold_ws,
    "nfkc_casefold_ws_nopunct": normalize_nfkc_casefold_ws_nopunct,
    "whitespace": _collapse,
}


@dataclass(frozen=True)
class MinHashSettings:
    """Near-duplicate settings. ``bands * rows`` must equal ``num_perm``.

    Defaults: word 5-grams of NFKC-casefolded text with punctuation removed, 120
    permutations in 20 bands of 6 rows, seed 1. With ``P(caught | s) = 1 - (1 - s**6)**20``:
    s=0.5 -> 0.27, s=0.6 -> 0.61, s=0.7 -> 0.92, s=0.8 -> 0.998, s=0.9 -> 1.0; implied
    threshold (1/20)**(1/6) = 0.607. The band stage is deliberately looser than
    ``verify_threshold`` (0.8): candidates are then checked with the exact Jaccard of their
    shingle sets, so a pair is removed when J >= 0.8 and it collided in a band, which
    happens with probability >= 0.998 for every J >= 0.8.

    Word 5-grams (as in Lee et al. 2022 and datatrove) ignore word order beyond five
    words and make a one-word edit in an n-word text cost about 5 of n shingles, so texts
    of 6 to ``short_text_words - 1`` words (default 50) use their words and word bigrams
    instead (module docstring: ``J_12(w, k)``); use
    ``shingle_type="char"`` with ``shingle_size`` 5-9 for text without spaces (CJK,
    code-like tokens). A text shorter than one shingle is a single shingle; a text that
    normalises to nothing has no shingles and is never a near-duplicate.

    ``verify=False`` treats every band collision as a duplicate (the classic LSH rule,
    threshold ~0.61 with the defaults). ``max_removal_rate`` is the ceiling for the
    removal-rate check on a result.
    """

    num_perm: int = 120
    shingle_size: int = 5
    shingle_type: str = "word"
    short_text_words: int = SHORT_TEXT_WORDS
    normalizer: str = "nfkc_casefold_ws_nopunct"
    bands: int = 20
    rows: int = 6
    seed: int = 1
    verify: bool = True
    verify_threshold: float = 0.8
    keep_rule: str = "lowest_docid"
    max_removal_rate: float = 0.5

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> NagInputError:
            return NagInputError(f"near-dedup setting '{name}' {why}")

        for name in ("num_perm", "shingle_size", "bands", "rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(name, f"must be a positive integer, got {value!r}")
        value = self.short_text_words
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("short_text_words", f"must be a non-negative integer (0 turns the short-text rule off), got {value!r}")
        if self.bands * self.rows != self.num_perm:
            raise bad("bands", f"times 'rows' must equal 'num_perm': {self.bands} * {self.rows} = "
                      f"{self.bands * self.rows} != {self.num_perm}. Change bands, rows or num_perm.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise bad("seed", f"must be a non-negative integer, got {self.seed!r}")
        if self.shingle_type not in SHINGLE_TYPES:
            raise bad("shingle_type", f"must be one of {list(SHINGLE_TYPES)}, got {self.shingle_type!r}")
        if self.normalizer not in NORMALIZERS:
            raise bad("normalizer", f"must be one of {sorted(NORMALIZERS)}, got {self.normalizer!r}")
        if self.keep_rule not in KEEP_RULES:
            raise bad("keep_rule", f"must be one of {list(KEEP_RULES)}, got {self.keep_rule!r}")
        if not isinstance(self.verify, bool):
            raise bad("verify", f"must be true or false, got {self.verify!r}")
        for name in ("verify_threshold", "max_removal_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise bad(name, f"must be a number in (0, 1], got {value!r}")

    @property
    def threshold(self) -> float:
        """Jaccard where the band S-curve is steepest: ``(1/bands) ** (1/rows)``."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    @property
    def short_rule_on(self) -> bool:
        return self.shingle_type == "word" and self.short_text_words > self.shingle_size

    @property
    def name(self) -> str:
        """Short label, e.g. ``w5u50_b20r6_s1``: word 5-grams (words + bigrams below 50 words), 20 bands x 6 rows, seed 1."""
        short = f"u{self.short_text_words}" if self.short_rule_on else ""
        return f"{self.shingle_type[0]}{self.shingle_size}{short}_b{self.bands}r{self.rows}_s{self.seed}"

    @property
    def hashing_scheme(self) -> str:
        return (f"datasketch=={datasketch.__version__};MinHash(scheme=affine32);"
                "hashfunc=sha1_hash32(utf8 shingle);fmix32;a*h+b mod 2^32")

    @property
    def settings_hash(self) -> str:
        """Hash of everything that changes a signature or a decision (not max_removal_rate)."""
        fields = {k: v for k, v in asdict(self).items() if k != "max_removal_rate"}
        return digest("near_dedup", fields, self.hashing_scheme, length=12)

    def normalize(self, text: str) -> str:
        return NORMALIZERS[self.normalizer](text)


def collision_probability(s: float, bands: int, rows: int) -> float:
    """``P(caught | s) = 1 - (1 - s**rows) ** bands``."""
    return 1.0 - (1.0 - s**rows) ** bands


def s_curve(settings: MinHashSettings, points: int | Iterable[float] = 21) -> list[tuple[float, float]]:
    """``(jaccard, P(candidate))`` at ``points`` evenly spaced Jaccards in [0, 1] (or at the given ones)."""
    grid = np.linspace(0.0, 1.0, points) if isinstance(points, int) else points
    return [(float(s), collision_probability(float(s), settings.bands, settings.rows)) for s in grid]


# ---------------------------------------------------------------- shingles and hashes

def shingles(text: str, settings: MinHashSettings) -> list[bytes]:
    """Distinct UTF-8 shingles of ``text`` after normalisation, in first-seen order.

    Word shingles are ``" ".join(words[i:i+n])``; they are cut straight out of the
    encoded, space-collapsed text, which gives the same bytes without a join per shingle.
    Under the short-text rule they are the words, then the word bigrams.
    """
    norm = settings.normalize(text)
    if not norm:
        return []
    n = settings.shingle_size
    if settings.shingle_type == "char":
        if norm.isascii():
            raw = norm.encode("ascii")
            out = [raw[i:i + n] for i in range(max(len(raw) - n, 0) + 1)]
        else:
            out = [norm[i:i + n].encode("utf-8") for i in range(max(len(norm) - n, 0) + 1)]
        return list(dict.fromkeys(out))
    raw = norm.encode("utf-8")
    if settings.short_rule_on and n < norm.count(" ") + 1 < settings.short_text_words:
        words = raw.split(b" ")  # words + word bigrams: see SHORT_TEXT_WORDS
        return list(dict.fromkeys(words + [a + b" " + b for a, b in zip(words, words[1:])]))
    spaces = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 32)
    if len(spaces) + 1 <= n:
        return [raw]
    starts = [0, *(spaces + 1).tolist()]
    ends = [*spaces.tolist(), len(raw)]
    return list(dict.fromkeys([raw[s:e] for s, e in zip(starts[: len(starts) - n + 1], ends[n - 1:])]))


def hash_shingles(items: Sequence[bytes]) -> np.ndarray:
    """Sorted distinct 64-bit hashes: the first 8 bytes of each SHA-1, little-endian.

    The low 32 bits are exactly ``datasketch.hashfunc.sha1_hash32``; the 64 bits serve
    the exact-Jaccard check, where 32-bit collisions would be visible on long texts.
    """
    if not items:
        return np.empty(0, dtype=np.uint64)
    sha1 = hashlib.sha1
    digests = np.frombuffer(b"".join([sha1(x).digest() for x in items]), dtype=np.uint8).reshape(-1, 20)
    return np.unique(digests[:, :8].copy().view("<u8").ravel())


def shingle_hashes(texts: Iterable[str], settings: MinHashSettings) -> list[np.ndarray]:
    return [hash_shingles(shingles(t, settings)) for t in texts]


@functools.lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own ``(a, b)`` permutation parameters for this ``num_perm`` and seed."""
    m = datasketch.MinHash(num_perm=num_perm, seed=seed)
    if getattr(m, "scheme", None) != "affine32":
        raise RuntimeError(f"datasketch {datasketch.__version__} does not default to the affine32 "
                           "scheme; install datasketch==2.0.0 as pinned in pyproject.toml")
    a, b = m.permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(hashes: Sequence[np.ndarray], settings: MinHashSettings) -> np.ndarray:
    """``(len(hashes), num_perm)`` uint32 MinHash signatures from :func:`hash_shingles` arrays.

    A document with no shingles gets the all-``2**32-1`` signature of an empty MinHash.
    """
    a, b = permutations(settings.num_perm, settings.seed)
    n = len(hashes)
    out = np.full((n, settings.num_perm), _MAX32, dtype=np.uint32)
    if n == 0:
        return out
    lengths = np.fromiter((len(h) for h in hashes), dtype=np.int64, count=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    if total == 0:
        return out
    flat = _fmix32((np.concatenate(hashes) & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    nonempty = np.flatnonzero(lengths > 0)
    starts, stops = offsets[nonempty], offsets[nonempty + 1]
    for lo in range(0, total, _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, total)
        sel = (starts < hi) & (stops > lo)  # documents overlapping [lo, hi)
        docs = nonempty[sel]
        seg = np.maximum(starts[sel], lo) - lo
        block = flat[lo:hi, None] * a[None, :] + b[None, :]  # uint32 wraps: mod 2**32
        out[docs] = np.minimum(out[docs], np.minimum.reduceat(block, seg, axis=0))
    return out


def band_keys(sigs: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """``(n, bands)`` uint64 bucket keys: a 64-bit mix of each band's ``rows`` values.

    Equal bands always give equal keys; unequal bands collide with probability ~2**-64.
    """
    x = sigs.reshape(len(sigs), settings.bands, settings.rows).astype(np.uint64)
    key = np.full(x.shape[:2], np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    for j in range(settings.rows):
        key = (key ^ x[:, :, j]) * np.uint64(0xFF51AFD7ED558CCD)
        key = key ^ (key >> np.uint64(29))
    return key


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted distinct hash arrays (1.0 for two empty sets)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    if len(a) == len(b) and np.array_equal(a, b):
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (len(a) + len(b) - inter)
