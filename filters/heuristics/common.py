"""Helpers shared by the heuristic filters: per-document tokenizers, duplicate counting, datatrove's punctuation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from curate.inflight import tracked
from curate.stage import Filter
from curate.text import WordTokenizer, check_splitter, require_splitter, tokenizer

# datatrove.utils.text.PUNCTUATION plus its TERMINAL_PUNCTUATION (PUNCTUATION_SET): a "symbol word" (Gopher) is a
# token made only of these. Copied rather than imported: datatrove is not a dependency of curate.
PUNCTUATION = "!/—”:％１〈&(、━\\【#%「」，】；+^]~“《„';’{|∶´[=-`*．（–？！：$～«〉,><》)?）。…@_.\"}►»" + "".join(
    map(chr, (x for a, b in ((0, 9), (11, 13), (13, 32), (127, 160)) for x in range(a, b)))
)
# datatrove.utils.text.TERMINAL_PUNCTUATION: sentence-final marks of many scripts (FineWeb's line_punct_ratio).
TERMINAL_PUNCTUATION = frozenset(
    "᪩？⁈𑩂．꩞𑅃﹗𑂾\u1b7d፧𑅂꡶꘎⁉࠾᪨𑊩𑱂᱿𖩮᥅\U00011f43\U00011f44﹒𑈹𑈸።܂؞꛳\U00010f88𑗍𐩖𑙂\u061d꩟᠉\u1b7e𑗗᰼𑻸؟𑪜꧉𑗉𐽙𖫵𖬷"
    "܀꓿᜵𑗏𑁇𑗓𑥄៖𑥆𑗑𑗒꯫۔𐩗\U00010f86꡷\u2e54｡៕߹⸮.𑇅࠹𛲟꫰꤯𐽗᭞𑜼፨𑃁꣏𑇟𖬸𑪛𑜾࠷𝪈?𑃀𑗃！։꣎॥𑗖᭛᠃!၊𖺘⁇𑗌𑑋𖭄᭟𑅁𑙁⸼꩝𑗋。꧈꫱"
    "𑜽𐽖𑂿᙮។꛷\U00010f89៚᥄𑗕𑗎᪪᭚࠽𑇞𑗊𐽘\u2e53𑗔𖩯𑇍𑻷𐽕𑩃।𑗂𑇆𑁈။᱾𑱁꘏܁᜶‼𑈻‽᪫﹖𑑌𑈼\U00010f87𑗐៙᰻"
)
PUNCTUATION_SET = frozenset(PUNCTUATION) | TERMINAL_PUNCTUATION


def duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(duplicate elements, their characters): every occurrence after an element's first, as Gopher counts."""
    unique = set(items)
    return len(items) - len(unique), sum(map(len, items)) - sum(map(len, unique))


def doc_tokenizers(batch: pa.Table, language: str | None, splitter: str | None = None) -> Iterator[WordTokenizer]:
    """One tokenizer per row: the stage's `language`, or (language: null) each document's `language` column; a
    named `splitter` for the languages it serves."""
    if language is not None or "language" not in batch.column_names:
        tok = tokenizer(language, splitter)
        for _ in range(batch.num_rows):
            yield tok
    else:
        for lang in batch.column("language").to_pylist():
            yield tokenizer(lang, splitter)


def texts(batch: pa.Table) -> list[str]:
    """The batch's text column as Python strings (null -> '')."""
    return [t or "" for t in batch.column("text").to_pylist()]


class WordFilter(Filter):
    """A filter that decides from a document's text and its language's word tokenizer (Gopher, FineWeb quality).

    Subclasses declare a `language` field (null: each document's `language` column), may declare `word_splitter`
    (a name in curate.text.SPLITTERS), and implement check()."""

    def preflight(self) -> None:
        require_splitter(getattr(self, "word_splitter", None))

    def setup(self) -> None:
        # spaCy's rules compile into large regular expressions: build them once per worker, not in a batch.
        language = self.language  # type: ignore[attr-defined]
        splitter = getattr(self, "word_splitter", None)
        check_splitter(splitter)
        if language is not None:
            tokenizer(language, splitter)

    def reject_batch(self, batch: pa.Table) -> list[str | None]:
        language = self.language  # type: ignore[attr-defined]
        splitter = getattr(self, "word_splitter", None)
        return [self.check(t, tok) for t, tok in zip(tracked(texts(batch)), doc_tokenizers(batch, language, splitter))]

    def check(self, text: str, tok: WordTokenizer) -> str | None:
        """The reason to reject `text`, or None."""
        raise NotImplementedError
