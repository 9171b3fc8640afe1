"""The word tokenizer BM25 indexes and queries share; its settings are saved with an index."""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import BaseModel, ConfigDict

# NLTK's English stop-word list, written out so that no data download is needed.
ENGLISH_STOPWORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren aren't as at be because been before
    being below between both but by can couldn couldn't d did didn didn't do does doesn doesn't doing don
    don't down during each few for from further had hadn hadn't has hasn hasn't have haven haven't having
    he her here hers herself him himself his how i if in into is isn isn't it it's its itself just ll m ma
    me mightn mightn't more most mustn mustn't my myself needn needn't no nor not now o of off on once only
    or other our ours ourselves out over own re s same shan shan't she she's should should've shouldn
    shouldn't so some such t than that that'll the their theirs them themselves then there these they this
    those through to too under until up ve very was wasn wasn't we were weren weren't what when where which
    while who whom why will with won won't wouldn wouldn't y you you'd you'll you're you've your yours
    yourself yourselves
    """.split()
)


class BM25Tokenizer(BaseModel):
    """Lower-cases, splits on a regex and drops stop words: ``BM25Tokenizer()("The cat's hat")``
    gives ``["cat", "hat"]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = r"\w+"
    """Regex whose matches are the tokens."""
    lowercase: bool = True
    """Lower-case the text before matching."""
    stopwords: str | tuple[str, ...] | None = "en"
    """``"en"`` for the built-in English list, a tuple of words, or ``None`` to keep all tokens."""

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    @cached_property
    def stopword_set(self) -> frozenset[str]:
        """The stop words this tokenizer drops."""
        if self.stopwords is None:
            return frozenset()
        if self.stopwords == "en":
            return ENGLISH_STOPWORDS
        if isinstance(self.stopwords, str):
            raise ValueError(f"unknown stop-word list {self.stopwords!r}; use 'en', a tuple of words or None")
        return frozenset(self.stopwords)

    def split(self, text: str) -> list[str]:
        """Split ``text`` into tokens, stop words included."""
        return self._regex.findall(text.lower() if self.lowercase else text)

    def __call__(self, text: str) -> list[str]:
        """Split ``text`` into tokens without stop words."""
        stop = self.stopword_set
        return [t for t in self.split(text) if t not in stop] if stop else self.split(text)
