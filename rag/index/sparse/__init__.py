"""The keyword leg: jieba tokenizer, cross-lingual terms for English questions, BM25."""
from rag.index.sparse.bm25 import BM25Backend, BM25Index
from rag.index.sparse.tokenizer import Tokenizer, normalize, quoted_terms

__all__ = ["BM25Backend", "BM25Index", "Tokenizer", "normalize", "quoted_terms"]
