from tui.format import bar, short_bytes, sparkline


def test_bar_fills_in_eighths_and_marks_watermarks_on_the_empty_part():
    assert bar(0.5, 8) == "████░░░░"
    assert bar(1 / 16, 2) == "▏░"
    assert bar(0.25, 8, marks=(0.5, 0.85)) == "██░░|░|░"
    assert bar(None, 3) == "···"
    assert bar(2.0, 4) == "████"


def test_sparkline_scales_to_the_largest_value_and_keeps_the_latest():
    assert sparkline([0, 1, 2, 4], 4) == "▁▂▄█"
    assert sparkline([5, 0, 0], 2) == "▁▁"
    assert sparkline([], 3) == "   "


def test_short_bytes():
    assert [short_bytes(n) for n in (512, 1536, 20 * 1024 ** 3, None)] == ["512B", "1.5K", "20G", "-"]
