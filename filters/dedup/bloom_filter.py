"""The Bloom filter of `bloom_dedup` and what feeds it: words as BFF and Dolma cut them (Unicode word boundaries),
64-bit n-gram hashes (numpy, no Python call per n-gram), a numpy bit array with k positions by double hashing from
one hash, and an exact set with the same interface (the tests' and the bench's reference)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import xxhash

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_POLY = np.uint64(0x100000001B3)  # the FNV-1a 64 prime: the rolling n-gram hash's multiplier
_MIX = np.uint64(0x9E3779B97F4A7C15)
# Words as Unicode word boundaries (UAX #29) cut them, whitespace segments dropped, as BFF and Dolma tokenise
# (Rust `split_word_bounds`): runs of letters/digits/underscore joined across an apostrophe, a period or a colon
# between letters and a comma or period between digits; combining marks and format characters stay with what they
# follow; Han, Hiragana and the Southeast Asian scripts (word-break class Other) are one character a token, Katakana
# runs one token; every other non-space character is a token of its own.


def _class_of(categories: tuple[str, ...], limit: int = 0x30000) -> str:
    ranges: list[list[int]] = []
    for cp in range(limit):
        if unicodedata.category(chr(cp)) in categories:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    return "[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges) + "]"


_EXT = "(?:" + _class_of(("Mn", "Mc", "Me", "Cf"), 0x20000) + "|[\\U000e0000-\\U000e01ef])"
_SINGLE = (
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff\u3040-\u309f\u0e00-\u0e7f\u0e80-\u0eff"
    "\u1000-\u109f\u1780-\u17ff\u1a20-\u1aaf]"
)
_KATA = "[\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]"
_W = rf"(?:(?!{_SINGLE}|{_KATA})\w)"
_WE = rf"(?:{_W}|{_EXT})"
_L, _D = r"[^\W\d_]", r"\d"
_MID = rf"(?:(?<={_L})[:\u00b7'\u2018\u2019\u2024\u2027.](?={_L})|(?<={_D})[,;.'\u2018\u2019\u2024](?={_D}))"
_TOKEN = re.compile(
    rf"{_W}{_WE}*(?:{_MID}{_WE}+)*|{_SINGLE}{_EXT}*|{_KATA}(?:{_KATA}|{_EXT})*|[^\w\s]{_EXT}*", re.UNICODE
)


# The fast path: text below U+0300 (no combining marks, no Han or Kana) except the soft hyphen (a format character)
# needs no mark or script rules. Typographic punctuation maps to an ASCII character of its word-break class
# (MidNumLet: U+2018, U+2019, U+2024 -> '.'; MidLetter: U+2027 -> ':'; line and paragraph separators -> space; the
# rest of U+2010-U+205E, class Other -> '!'), so that text with curly quotes takes the fast path too; the tokens are
# then cut from the original text at the same places.
_FAST = re.compile(rf"\w+(?:{_MID}\w+)*|[^\w\s]")
_TYPOGRAPHIC = {cp: "!" for cp in range(0x2010, 0x205F) if unicodedata.category(chr(cp)) != "Cf"}
_TYPOGRAPHIC.update({0x2018: ".", 0x2019: ".", 0x2024: ".", 0x2027: ":", 0x2028: " ", 0x2029: " "})


def _plain(text: str) -> bool:
    return not text or (max(text) < "\u0300" and "\xad" not in text)


def tokens(text: str) -> list[str]:
    """The word tokens of a paragraph (see _TOKEN)."""
    if _plain(text):
        return _FAST.findall(text)
    mapped = text.translate(_TYPOGRAPHIC)
    if _plain(mapped):
        return [text[m.start() : m.end()] for m in _FAST.finditer(mapped)]
    return _TOKEN.findall(text)


def word_hashes(words: Iterable[str], seed: int) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(w.encode(), seed) for w in words), np.uint64)


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hashes of the len - n + 1 windows of n consecutive words: a polynomial over 64-bit words (wrap-around)."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return np.zeros(0, np.uint64)
    h = np.zeros(count, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _POLY + word_hashes[j : j + count]
        return _finish(h, n)


def _finish(h: np.ndarray, n: int) -> np.ndarray:
    # splitmix64's finaliser, keyed by the window length so that a shorter whole-paragraph gram never equals an n-gram
    with np.errstate(over="ignore"):
        h = h ^ np.uint64(n) * _MIX
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def bloom_size(expected_items: int, fp_rate: float) -> tuple[int, int]:
    """(bits, hash functions) of a Bloom filter holding `expected_items` at false-positive rate `fp_rate`:
    m = -n ln p / (ln 2)^2, k = (m / n) ln 2 (Bloom 1970; Broder & Mitzenmacher 2004)."""
    n = max(1, int(expected_items))
    bits = max(64, math.ceil(-n * math.log(fp_rate) / math.log(2) ** 2))
    return bits, max(1, round(bits / n * math.log(2)))


def hashes_for_bits(bits: int, expected_items: int) -> int:
    """The number of hash functions that minimises the false-positive rate of `bits` holding `expected_items`."""
    return max(1, round(bits / max(1, int(expected_items)) * math.log(2)))


class BloomFilter:
    """A Bloom filter over 64-bit item hashes: a numpy bit array, k positions from one hash by double hashing
    (Kirsch & Mitzenmacher 2006: g_i = h1 + i h2 mod m, h1 the hash, h2 its halves swapped, made odd)."""

    def __init__(self, bits: int, hashes: int) -> None:
        if bits < 8 or hashes < 1:
            raise ValueError(f"a Bloom filter needs at least 8 bits and 1 hash, got {bits} and {hashes}")
        self.bits = int(bits)
        self.k = int(hashes)
        self.array = np.zeros((self.bits + 7) // 8, np.uint8)
        self._steps = np.arange(self.k, dtype=np.uint64)

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def positions(self, items: np.ndarray) -> np.ndarray:
        """(len(items), k) bit positions."""
        h1 = items.astype(np.uint64, copy=False)
        h2 = ((h1 >> np.uint64(32)) | (h1 << np.uint64(32))) | np.uint64(1)
        with np.errstate(over="ignore"):
            g = h1[:, None] + self._steps[None, :] * h2[:, None]
            if self.bits <= 1 << 32:
                # Lemire's multiply-shift range reduction of g's high 32 bits: no division
                return ((g >> np.uint64(32)) * np.uint64(self.bits)) >> np.uint64(32)
            return g % np.uint64(self.bits)

    def _get(self, pos: np.ndarray) -> np.ndarray:
        return ((self.array[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1).astype(bool)

    def contains(self, items: np.ndarray) -> np.ndarray:
        """For each item: were all its k bits set (seen, or a false positive)?"""
        return self.lookup(items)[0]

    def lookup(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """contains(items), and their positions for insert() (computed once)."""
        if not len(items):
            return np.zeros(0, bool), np.zeros((0, self.k), np.uint64)
        pos = self.positions(items)
        return self._get(pos).all(axis=1), pos

    def insert(self, pos: np.ndarray) -> None:
        """add() of the items whose positions lookup() gave."""
        flat = pos.ravel()
        np.bitwise_or.at(self.array, flat >> np.uint64(3), np.left_shift(1, flat & np.uint64(7)).astype(np.uint8))

    def add(self, items: np.ndarray) -> None:
        if len(items):
            self.insert(self.positions(items))

    def check_and_add(self, items: np.ndarray) -> np.ndarray:
        """What looking up and then inserting the items one after the other would answer (Dolma's loop), in one
        vectorised step: item j is contained when each of its bits was set before or by an item i < j."""
        if not len(items):
            return np.zeros(0, bool)
        pos = self.positions(items)
        before = self._get(pos)
        flat = pos.ravel()
        uniq, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        setter = (first // self.k)[inverse].reshape(pos.shape)  # the first item that sets each bit
        own = np.arange(len(items))[:, None]
        contained = (before | (setter < own)).all(axis=1)
        np.bitwise_or.at(self.array, uniq >> np.uint64(3), np.left_shift(1, uniq & np.uint64(7)).astype(np.uint8))
        return contained

    def fill_ratio(self) -> float:
        return float(np.unpackbits(self.array).sum()) / self.bits


# check_and_add over this many items at a time: its temporaries are ~50 k bytes an item (the k positions, their sort)
CHUNK = 1 << 17


def check_and_add_all(bloom: ItemSet, items: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """check_and_add over `items` in order, in chunks (the answer does not depend on the chunking)."""
    if len(items) <= chunk:
        return bloom.check_and_add(items)
    return np.concatenate([bloom.check_and_add(items[s : s + chunk]) for s in range(0, len(items), chunk)])


def partition_of(items: np.ndarray, partitions: int) -> np.ndarray:
    """The hash partition (0 .. partitions - 1) of each item hash: a remix of the hash (a multiply and a fold that the
    filter's double hashing does not share), so that one partition's items still spread over all of its filter's
    bits. Equal items always fall in the same partition."""
    if partitions == 1:
        return np.zeros(len(items), np.int32)
    with np.errstate(over="ignore"):
        x = items.astype(np.uint64, copy=False) * np.uint64(0xD6E8FEB86659FD93)
        x ^= x >> np.uint64(32)
        return (x % np.uint64(partitions)).astype(np.int32)


class ExactSet:
    """The exact reference for tests and the bench: a Python set where the Bloom filter would be (no false
    positives), with the same interface."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def contains(self, items: np.ndarray) -> np.ndarray:
        return np.array([int(x) in self.seen for x in items], bool)

    def add(self, items: np.ndarray) -> None:
        self.seen.update(int(x) for x in items)

    def lookup(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.contains(items), items

    def insert(self, items: np.ndarray) -> None:
        self.add(items)

    def check_and_add(self, items: np.ndarray) -> np.ndarray:
        out = np.zeros(len(items), bool)
        for j, x in enumerate(items.tolist()):
            out[j] = x in self.seen
            self.seen.add(x)
        return out


class ItemSet(Protocol):
    def contains(self, items: np.ndarray) -> np.ndarray: ...
    def add(self, items: np.ndarray) -> None: ...
    def check_and_add(self, items: np.ndarray) -> np.ndarray: ...
    def lookup(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def insert(self, token: np.ndarray) -> None: ...
