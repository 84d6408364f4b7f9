"""Citation lookup: where a pasted quote comes from (exact characters), or that it is not
in the corpus; bigram postings of the normalised texts, bit-parallel alignment."""
from rag.cite.citer import (MAX_QUOTE_CHARS, MAX_RELATED, MIN_CHARS, RELATED_LABEL, Citer, CiteResult, Match,
                            check_quote, clean_quote, diff_ops, format_result, locate, max_edits,
                            postings_for, render_diff)

__all__ = ["MAX_QUOTE_CHARS", "MAX_RELATED", "MIN_CHARS", "RELATED_LABEL", "Citer", "CiteResult", "Match", "check_quote",
           "clean_quote", "diff_ops", "format_result", "locate", "max_edits", "postings_for", "render_diff"]
