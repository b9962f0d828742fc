"""companion.core.tables: the HTML table the chapters show their results in."""

from companion.core.tables import html_table


def test_header_then_one_row_per_entry():
    html = html_table(["method", "loss"], [["Adam", "0.10"], ["SGD", 0.2]]).data
    assert html.startswith(
        '<table class="results"><thead><tr><th>method</th><th>loss</th></tr></thead><tbody>'
    )
    assert html.count("<tr>") == 3
    assert '<td data-label="method">SGD</td><td data-label="loss">0.2</td>' in html
    assert html.endswith("</tbody></table>")


def test_no_rows_is_a_header_only_table():
    assert (
        html_table(["a"], []).data
        == '<table class="results"><thead><tr><th>a</th></tr></thead><tbody></tbody></table>'
    )


def test_each_cell_is_labelled_with_its_column_in_plain_text():
    """A narrow screen shows each row as labelled cells: the label is the header without markup."""
    html = html_table(['<abbr title="x">Δ</abbr> vs $L_2$', "a&b"], [["1", "2"]]).data
    assert '<td data-label="Δ vs L_2">1</td><td data-label="a&amp;b">2</td>' in html
