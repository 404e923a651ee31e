"""The gateway's one table of errors (gateway/errors.h) and the close-code
table of docs/protocol.md say the same: every close code the gateway sends
is documented with its error code, and the documentation lists no code the
gateway does not send. A new error is one row in errors.h and one in the
docs, or this test fails."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def header_rows():
    text = (REPO / "gateway" / "errors.h").read_text()
    rows = re.findall(r'X\((\w+),\s*(\d+),\s*(\d+),\s*"([a-z_]+)"', text)
    assert len(rows) >= 10, rows
    return [(name, int(close), int(http), code) for name, close, http, code in rows]


def doc_rows():
    text = (REPO / "docs" / "protocol.md").read_text()
    start = text.index("**Close codes the gateway decides**")
    table = text[start:text.index("\n\n", text.index("| --- |", start))]
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", table, re.M)
    assert rows, table
    return {(int(close), code) for close, code in rows}


def test_every_close_code_is_documented_and_every_documented_one_is_sent():
    sent = {(close, code) for _, close, _, code in header_rows() if close}
    assert sent == doc_rows()


def test_private_close_codes_are_4000_plus_the_http_status():
    for name, close, http, code in header_rows():
        if close >= 4000:
            assert close == 4000 + http, (name, close, http)


def test_error_codes_are_the_documented_ones():
    text = (REPO / "docs" / "protocol.md").read_text()
    for name, _, _, code in header_rows():
        assert f"`{code}`" in text or f'"code":"{code}"' in text, (name, code)
