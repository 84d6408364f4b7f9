"""rag.chunks.cleaning: the documented rules, and the index map back to raw characters."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from rag.chunks.cleaning import WRAP_MIN, clean, clean_map

LONG_LINE = "公安机关深入学习贯彻全国公安厅局长会议精神坚决"   # 24 CJK characters
assert len(LONG_LINE) >= WRAP_MIN


# rule 1 ---------------------------------------------------------------------------------
def test_rule1_bold_markers_dropped():
    assert clean("**聚焦主题主线**，忠诚担当") == "聚焦主题主线，忠诚担当"
    assert clean("前**中**后") == "前中后"


def test_rule1_single_asterisk_kept():
    assert clean("注*号") == "注*号"


# rule 2 ---------------------------------------------------------------------------------
def test_rule2_outer_whitespace_dropped():
    assert clean(" \u3000\n\n  正文。\r\n\t \n") == "正文。"
    assert clean("\n**  标题 **\n") == "标题"


def test_whitespace_only_is_empty():
    assert clean(" \n\n\t\u3000") == ""
    assert clean("") == ""


# rule 3 ---------------------------------------------------------------------------------
def test_rule3_join_glues_page_break():
    raw = "必须坚持全\n\n面从严管党治警"
    j = raw.index("\n")
    assert clean(raw) == "必须坚持全\n面从严管党治警"            # without the join: paragraph break
    assert clean(raw, [j]) == "必须坚持全面从严管党治警"
    # joins are absolute offsets in the frame given by `offset`
    assert clean(raw, [j + 1000], 1000) == "必须坚持全面从严管党治警"
    assert clean(raw, [j], 1000) == "必须坚持全\n面从严管党治警"     # wrong frame: no join


def test_rule3_join_only_where_recorded():
    raw = "忠诚拥护“两\n\n个确立”。\n\n下一段。"
    j = raw.index("\n")
    assert clean(raw, [j]) == "忠诚拥护“两个确立”。\n下一段。"


# rule 4 ---------------------------------------------------------------------------------
def test_rule4_blank_line_is_paragraph_break():
    for gap in ("\n\n", "\n\n\n\n", "\r\n\r\n", "\n \u3000\n", " \n\t\n ", "\r\r"):
        assert clean(f"第一段。{gap}第二段。") == "第一段。\n第二段。", repr(gap)


# rule 5 ---------------------------------------------------------------------------------
def test_rule5_hard_wrap_between_cjk_after_long_line_dropped():
    assert clean(LONG_LINE + "\n" + "做到两个维护。") == LONG_LINE + "做到两个维护。"
    assert clean(LONG_LINE + "\r\n" + "做到两个维护。") == LONG_LINE + "做到两个维护。"


def test_rule5_short_line_gets_space():
    assert clean("湖南省副省长、公安厅厅长\n王一鸥") == "湖南省副省长、公安厅厅长 王一鸥"


def test_rule5_line_length_threshold():
    exact = LONG_LINE[:WRAP_MIN]
    short = LONG_LINE[:WRAP_MIN - 1]
    assert clean(exact + "\n续") == exact + "续"
    assert clean(short + "\n续") == short + " 续"


def test_rule5_non_cjk_neighbour_gets_space():
    assert clean(LONG_LINE + "\nABC") == LONG_LINE + " ABC"
    assert clean("2022 years of progress in the province\n续") == \
        "2022 years of progress in the province 续"


def test_rule5_bold_markers_do_not_hide_cjk_neighbour():
    raw = "**" + LONG_LINE + "\n" + "以更高水平平安广东**"
    assert clean(raw) == LONG_LINE + "以更高水平平安广东"


# rule 6 ---------------------------------------------------------------------------------
def test_rule6_other_runs_become_one_space():
    assert clean("2022 \t 年\u3000\u30001 月") == "2022 年 1 月"
    assert clean("甲\u00a0乙") == "甲 乙"


# clean_map ------------------------------------------------------------------------------
SAMPLES = [
    "**聚焦主题主线，忠诚担当作为，\n以更高水平平安广东喜迎党的二十大**\n广东省副省长\n王志忠",
    "\n\n一、聚焦“三个绝对”，忠诚拥护“两\n\n个确立”，坚决做到“两个维护”。\r\n\r\n下一段",
    LONG_LINE + "\n" + LONG_LINE + "\n\n  2022 年 1 月",
]


def test_clean_map_points_to_identical_raw_characters():
    for raw in SAMPLES:
        for offset in (0, 37):
            joins = [raw.index("两\n") + 1 + offset] if "两\n" in raw else []
            text, idx = clean_map(raw, joins, offset)
            assert text == clean(raw, joins, offset)
            assert len(idx) == len(text)
            for ch, i in zip(text, idx):
                if not ch.isspace():
                    assert raw[i - offset] == ch
                else:
                    assert raw[i - offset].isspace()


def test_clean_map_with_join_maps_across_the_gap():
    raw = "坚持全\n\n面从严"
    text, idx = clean_map(raw, [103], 100)
    assert text == "坚持全面从严"
    assert idx == [100, 101, 102, 105, 106, 107]


# property -------------------------------------------------------------------------------
WS = " \t\r\n\u3000"
_piece = st.one_of(
    st.text(alphabet="公安机关坚持全面从严管党治警两个确立湖南四川", min_size=1, max_size=25),
    st.text(alphabet="abcXYZ0129", min_size=1, max_size=8),
    st.sampled_from(list("，。！？；：“”（）、—…,.;:!?*")),
    st.sampled_from([" ", "  ", "\u3000", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", "\n \n", "**", "***"]),
)
texts = st.lists(_piece, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(raw=texts, data=st.data())
def test_clean_map_properties(raw, data):
    offset = data.draw(st.integers(0, 50), label="offset")
    # joins may only sit where a whitespace run starts; pick some of those
    starts = [i for i, c in enumerate(raw) if c in WS and (i == 0 or raw[i - 1] not in WS)]
    joins = data.draw(st.lists(st.sampled_from(starts), unique=True) if starts else st.just([]),
                      label="joins")
    text, idx = clean_map(raw, [j + offset for j in joins], offset)

    assert len(text) == len(idx)
    assert all(a < b for a, b in zip(idx, idx[1:])), "index list must be strictly increasing"
    assert all(offset <= i < offset + len(raw) for i in idx)
    for ch, i in zip(text, idx):
        if ch.isspace():
            assert ch in " \n" and raw[i - offset] in WS
        else:
            assert raw[i - offset] == ch
    # nothing lost: every visible raw character except '*' survives, at its own index
    kept = set(idx)
    lost = [i for i, c in enumerate(raw) if c not in WS and c != "*" and i + offset not in kept]
    assert not lost, [raw[i] for i in lost]
    # whitespace is normalised: none at the ends, never two in a row
    assert text == text.strip(WS)
    assert not any(a in " \n" and b in " \n" for a, b in zip(text, text[1:]))
    assert "\r" not in text and "\t" not in text and "\u3000" not in text
    # cleaning is deterministic and agrees with clean()
    assert clean(raw, [j + offset for j in joins], offset) == text
