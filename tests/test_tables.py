"""companion.core.tables: the HTML table the chapters show their results in."""

from companion.core.tables import html_table


def test_header_then_one_row_per_entry():
    html = html_table(["method", "loss"], [["Adam", "0.10"], ["SGD", 0.2]]).data
    assert html.startswith(
        "<table><thead><tr><th>method</th><th>loss</th></tr></thead><tbody>"
    )
    assert html.count("<tr>") == 3 and "<td>SGD</td><td>0.2</td>" in html
    assert html.endswith("</tbody></table>")


def test_no_rows_is_a_header_only_table():
    assert (
        html_table(["a"], []).data
        == "<table><thead><tr><th>a</th></tr></thead><tbody></tbody></table>"
    )
