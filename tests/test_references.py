"""GB/T 7714-2015 references and RIS records (rag.references): format, fallbacks, metadata.csv."""
from __future__ import annotations

from pathlib import Path

from rag.references import (CorpusMetadata, Referencer, Work, format_reference, location_text, read_metadata,
                            ris_record, split_authors)


def test_journal_article_as_the_standard_writes_it():
    w = Work(title="聚焦主题主线，忠诚担当作为，以更高水平平安广东喜迎党的二十大", authors=["王志忠"],
             journal="人民公安", year="2022", issue="2", pages="4–6")
    assert format_reference(w) == ("王志忠. 聚焦主题主线，忠诚担当作为，以更高水平平安广东喜迎党的二十大[J]. "
                                   "人民公安, 2022(2): 4-6.")


def test_volume_issue_pages_and_online_copy():
    w = Work(title="T", authors=["甲"], journal="刊", year="2020", volume="36", issue="3", pages="1~9")
    assert format_reference(w) == "甲. T[J]. 刊, 2020, 36(3): 1-9."
    w.url = "https://example.org/a"
    assert format_reference(w) == "甲. T[J/OL]. 刊, 2020, 36(3): 1-9. https://example.org/a."


def test_more_than_three_authors_then_deng():
    assert split_authors("张三、李四 王五，赵六") == ["张三", "李四", "王五", "赵六"]
    w = Work(title="T", authors=split_authors("张三、李四、王五、赵六"), journal="刊", year="2021")
    assert format_reference(w).startswith("张三, 李四, 王五, 等. T[J]. 刊, 2021.")
    latin = Work(title="T", authors=split_authors("A Smith, B Jones, C Wu, D Li"), journal="J", year="2021")
    assert format_reference(latin).startswith("A Smith, B Jones, C Wu, et al. T[J].")


def test_missing_parts_left_out_never_invented():
    # no journal: not a serial contribution; type falls back to Z (or EB/OL online)
    assert format_reference(Work(title="T", authors=["甲"])) == "甲. T[Z]."
    assert format_reference(Work(title="T", authors=["甲"], type="J")) == "甲. T[Z]."
    assert format_reference(Work(title="T", url="http://x.cn/a")) == "T[EB/OL]. http://x.cn/a."
    assert format_reference(Work(title="T", type="R", year="2019")) == "T[R]. 2019."
    # a journal without year or pages: only what is known
    assert format_reference(Work(title="T", authors=["甲"], journal="刊")) == "甲. T[J]. 刊."
    assert format_reference(Work()) == ""


def test_metadata_csv_rows_for_files_and_articles(tmp_path: Path):
    (tmp_path / "metadata.csv").write_text(
        "\ufefffile,journal,year,volume,issue,pages,url,type\n"
        "a.txt,人民公安,2022,,2,,,J\n"
        "a.txt#1,,,,,4-6,,\n"
        ",orphan,,,,,,\n"
        "sub/b.txt,,2020,,,,http://x.cn/b,\n", encoding="utf-8")
    warned: list[str] = []
    m = read_metadata(tmp_path, warned.append)
    assert m.lookup("a.txt") == {"journal": "人民公安", "year": "2022", "volume": "", "issue": "2", "pages": "",
                                 "url": "", "type": "J"}
    assert m.lookup("a.txt", 1)["pages"] == "4-6" and m.lookup("a.txt", 1)["journal"] == "人民公安"
    assert m.lookup("a.txt", 0)["pages"] == ""
    assert m.lookup("sub/b.txt")["url"] == "http://x.cn/b"
    assert len(warned) == 1 and ":4:" in warned[0]
    assert read_metadata(tmp_path / "none").files == {}


def test_bad_metadata_header_is_reported_not_guessed(tmp_path: Path):
    (tmp_path / "metadata.csv").write_text("name,journal\na.txt,刊\n", encoding="utf-8")
    warned: list[str] = []
    assert read_metadata(tmp_path, warned.append).files == {}
    assert warned and "header" in warned[0]


def test_referencer_uses_byline_heading_and_metadata(tmp_path: Path):
    (tmp_path / "metadata.csv").write_text("file,journal,year,volume,issue,pages,url,type\n"
                                           "a.txt#1,人民公安,2022,,2,4-6,,J\n", encoding="utf-8")
    ref = Referencer(tmp_path)
    r = {"source": "a.txt", "article": 1, "title": "标题", "author": "王志忠", "start": 5, "end": 9,
         "section": ["一、总体"], "paragraph": 3}
    assert ref.reference(r) == "王志忠. 标题[J]. 人民公安, 2022(2): 4-6."
    # another article of the same file has no row: no journal, no pages
    assert ref.reference({**r, "article": 2}) == "王志忠. 标题[Z]."
    # metadata.csv edited while the app runs: read again
    (tmp_path / "metadata.csv").write_text("file,journal,year,volume,issue,pages,url,type\n"
                                           "a.txt,公安研究,2021,,,,,\n", encoding="utf-8")
    import os
    os.utime(tmp_path / "metadata.csv", (1, 1))
    assert ref.reference(r) == "王志忠. 标题[J]. 公安研究, 2021."
    assert location_text(r) == "a.txt，一、总体，第3段，字符 5–9"
    assert location_text({**r, "page": 2, "page_end": 3}).endswith("第3段，第2–3页，字符 5–9")


def test_no_title_uses_the_file_name(tmp_path: Path):
    assert Referencer(None).reference({"source": "dir/报告.txt", "title": "", "author": ""}) == "报告[Z]."
    assert isinstance(Referencer(None).metadata(), CorpusMetadata)


def test_ris_record_fields():
    w = Work(title="标题", authors=["王志忠", "李四"], journal="人民公安", year="2022", issue="2", pages="4-6",
             url="http://x.cn")
    rec = ris_record(w, "a.txt，第3段，字符 5–9", "原文\n一句")
    lines = rec.splitlines()
    assert lines[0] == "TY  - JOUR" and lines[-1] == "ER  - "
    assert "AU  - 王志忠" in lines and "AU  - 李四" in lines
    for tag in ("TI  - 标题", "JO  - 人民公安", "PY  - 2022", "IS  - 2", "SP  - 4", "EP  - 6", "UR  - http://x.cn"):
        assert tag in lines
    assert "N1  - a.txt，第3段，字符 5–9；“原文 一句”" in lines      # one line per tag
    assert not any(line.startswith("VL") for line in lines)          # unknown: left out
    assert ris_record(Work(title="T")).splitlines()[0] == "TY  - GEN"


def test_rag_batch_format_ris(cli, seed_index, tmp_path: Path):
    qs = tmp_path / "q.txt"
    qs.write_text("四川公安的五大行动\n枫桥经验\n", encoding="utf-8")
    out = tmp_path / "refs.ris"
    proc = cli("batch", str(qs), "--index", str(seed_index), "-k", "2", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text.count("TY  - ") == 4 and text.count("ER  - ") == 4
    assert "AU  - " in text and "字符 " in text
    bad = cli("batch", str(qs), "--index", str(seed_index), "--format", "csv", "-o", str(tmp_path / "x.ris"))
    assert bad.returncode == 2 and "csv" in bad.stderr and "Traceback" not in bad.stderr
