"""The reachability grid: printed, read back, compared (no root needed)."""

import pytest

from podnet.lab.probe import differences, grid, parse_grid


def test_a_printed_grid_reads_back():
    names = ["x/a", "x/b", "y/a"]
    results = {(s, d): not (s == "y/a" and d == "x/b") for s in names for d in names}
    text = grid(names, results)
    assert text.splitlines()[2].split() == ["x/b", ".", ".", "."]
    header, cells = parse_grid("# expected after the policy\n\n" + text)
    assert header == names and cells == results


def test_differences_name_each_pair_both_ways():
    expected = {("a", "b"): True, ("b", "a"): False, ("a", "a"): True}
    observed = {("a", "b"): False, ("b", "a"): False, ("b", "b"): True}
    assert differences(expected, observed) == [
        "a -> a: expected but no such pod pair was probed",
        "a -> b: expected ., observed X",
        "b -> b: not in the expected grid (observed .)",
    ]
    assert differences(expected, expected) == []


@pytest.mark.parametrize("text,message", [
    ("", "empty grid"),
    ("a b\na . .\nb .\n", "line 3: 1 cells for 2 destinations"),
    ("a b\na . ?\nb . .\n", "line 2: cell a -> b is '?'"),
    ("a b\na . .\nc . .\n", "rows (a c) and columns (a b) name different pods"),
])
def test_bad_grids_say_where(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_grid(text)
