"""Build HTML (and inline SVG) as lxml elements: text and attribute values are escaped by the serializer, and made
XML-safe here, so nothing a device sent can become markup."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lxml import etree
from lxml import html as lxml_html

from .timeline import clean


def h(tag: str, *children: Any, **attrs: object) -> Any:
    """An element: `children` are strings, elements, None (skipped) or iterables of them; attribute names drop a
    trailing `_` and turn `_` into `-` (`class_` -> class, `text_anchor` -> text-anchor)."""
    element = etree.Element(tag, {name.rstrip("_").replace("_", "-"): clean(str(v)) for name, v in attrs.items()})
    _add(element, children)
    return element


def _add(element: Any, child: Any) -> None:
    if child is None:
        return
    if isinstance(child, str):
        text = clean(child)
        if len(element):
            element[-1].tail = (element[-1].tail or "") + text
        else:
            element.text = (element.text or "") + text
    elif isinstance(child, etree._Element):
        element.append(child)
    elif isinstance(child, Iterable):
        for item in child:
            _add(element, item)
    else:
        raise TypeError(f"not an HTML child: {type(child).__name__}")


def document(root: Any) -> str:
    """The page as HTML5 text."""
    text: str = lxml_html.tostring(root, doctype="<!DOCTYPE html>", encoding="unicode", method="html")
    return text
