"""Byte-level BPE tokenizer with CLIP's 49,408-token vocabulary.

The vocabulary file ships beside this module (``clip_lightning/models``). Token ids are
identical to OpenAI's ``clip.tokenize``; see ``tests/models/test_tokenizer.py``.
"""

from __future__ import annotations

import gzip
import html
import itertools
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import ftfy
import regex
import torch

__all__ = ["VOCAB_FILE", "SimpleTokenizer", "tokenize"]

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
# 49,152 - 256 - 2 merges are used by CLIP (the file holds more).
_NUM_MERGES = 49152 - 256 - 2

# Words are letters runs, single digits, or runs of other non-space symbols; the special
# tokens and English contractions come first so they are never split.
_WORD_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")


@lru_cache
def bytes_to_unicode() -> dict[int, str]:
    """Map each byte to a printable unicode character, so BPE never sees whitespace/control bytes.

    The order matters: it is the order of the first 256 vocabulary entries (printable bytes
    first, then the rest by value).
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def clean_text(text: str) -> str:
    """ftfy repair, HTML unescape (twice, for double-escaped text), collapse whitespace."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return _WHITESPACE.sub(" ", text.strip()).strip()


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(word))


class SimpleTokenizer:
    """CLIP's lower-cased byte-level BPE."""

    def __init__(self, bpe_path: str | None = None) -> None:
        if bpe_path is None:
            raw = resources.files("clip_lightning").joinpath("models").joinpath(VOCAB_FILE).read_bytes()
        else:
            with open(bpe_path, "rb") as f:
                raw = f.read()
        lines = gzip.decompress(raw).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.decoder = {i: tok for tok, i in self.encoder.items()}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.sot_token = self.encoder[SOT]
        self.eot_token = self.encoder[EOT]
        self._cache: dict[str, str] = {SOT: SOT, EOT: EOT}

    def __len__(self) -> int:
        return len(self.encoder)

    def bpe(self, token: str) -> str:
        """Merge the characters of one word (already byte-mapped) into BPE units, space-joined."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word: tuple[str, ...] = (*token[:-1], token[-1] + "</w>")
        while len(word) > 1:
            best = min(_pairs(word), key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if best not in self.bpe_ranks:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        out = " ".join(word)
        if len(self._cache) < 1_000_000:
            self._cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens."""
        ids: list[int] = []
        for word in _WORD_PATTERN.findall(clean_text(text).lower()):
            mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[unit] for unit in self.bpe(mapped).split(" "))
        return ids

    def decode(self, tokens: Iterable[int]) -> str:
        """Inverse of :meth:`encode` up to cleaning; word ends become spaces."""
        text = "".join(self.decoder[int(t)] for t in tokens)
        data = bytearray(self.byte_decoder[c] for c in text)
        return data.decode("utf-8", errors="replace").replace("</w>", " ")


@lru_cache(maxsize=1)
def _default_tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer()


def tokenize(texts: str | list[str], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """Tokenize text(s) into an int64 tensor ``[N, context_length]``, zero padded.

    Each row is ``<sot> tokens <eot>``. A text longer than ``context_length`` raises
    ``RuntimeError`` (as OpenAI's does) naming it, unless ``truncate=True`` (then the last kept token is ``<eot>``).
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = _default_tokenizer()
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [tok.sot_token, *tok.encode(text), tok.eot_token]
        if len(ids) > context_length:
            if not truncate:
                shown = text if len(text) <= 80 else text[:77] + "..."
                raise RuntimeError(
                    f"Input {shown!r} is {len(ids)} tokens long, more than context length "
                    f"{context_length}; shorten it or pass truncate=True."
                )
            ids = ids[:context_length]
            ids[-1] = tok.eot_token
        result[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return result
