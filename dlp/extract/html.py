"""HTML (and XML-ish markup) to text: tags removed without inserting spaces inside inline markup, so
`4111<span></span>1111` reads as one number; entities unescaped; block elements become line breaks."""

from __future__ import annotations

from html.parser import HTMLParser

_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
    "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul", "title", "option",
})
_CELL = frozenset({"td", "th"})
_HIDDEN_TEXT = frozenset({"script", "style"})  # still text: secrets hide in inline scripts too
_ATTRS = ("alt", "title", "value", "content", "href", "placeholder", "data", "src")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.out.append("\n")
        elif tag in _CELL:
            self.out.append("\t")
        # Attribute values (alt text, hidden inputs, links with query strings) carry content too; they
        # go after the text so that they never split a number that runs across the tag.
        self.attrs.extend(v for k, v in attrs if v and (k in _ATTRS or k.startswith("data-")))

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK or tag in _HIDDEN_TEXT:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        self.out.append(data)

    def handle_comment(self, data: str) -> None:
        self.out.append(" " + data + " ")


def html_to_text(html: str) -> str:
    parser = _TextParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return html
    text = "".join(parser.out)
    return text + "\n" + "\n".join(parser.attrs) if parser.attrs else text
