"""References people paste into a report: GB/T 7714-2015 entries and RIS records, built from
an article's byline and heading plus optional corpus metadata (`metadata.csv`)."""
from rag.references.gbt7714 import Work, format_reference, split_authors
from rag.references.metadata import METADATA_FILE, METADATA_HEADER, CorpusMetadata, read_metadata
from rag.references.ris import ris_record, ris_records
from rag.references.works import Referencer, location_text

__all__ = ["Work", "format_reference", "split_authors", "METADATA_FILE", "METADATA_HEADER",
           "CorpusMetadata", "read_metadata", "ris_record", "ris_records", "Referencer", "location_text"]
