"""Hybrid search: dense and BM25 candidates fused by normalised exact scores."""
from rag.search.hybrid import Fusion, Result, Searcher, fuse, matched_terms, minmax
from rag.search.inputs import MAX_K, MAX_QUERY_CHARS, check_k, clean_input, clean_query

__all__ = ["Fusion", "Result", "Searcher", "fuse", "matched_terms", "minmax", "MAX_K",
           "MAX_QUERY_CHARS", "check_k", "clean_input", "clean_query"]
