"""Citation postings and alignment live with the index that stores them
(rag.index.ngrams: the postings are written when a segment is); this module keeps the
names citation lookup and its tests have always imported."""
from rag.index.ngrams import (CITE_DIR, FILES, Candidate, MultiNgram, NgramIndex, _codes, _fold,  # noqa: F401
                              _last_row, _last_row_dp, _pick, _text, align, normalize, normalize_codes,
                              normalize_map)
