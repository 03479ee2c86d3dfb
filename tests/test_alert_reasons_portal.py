"""Every reason balance can name an alert with has a sentence in the portal, and each
sentence uses only figures balance gives it (the portal says reasons in the reader's
language from ``reason_code`` and ``reason_params``)."""

from __future__ import annotations

import re
from pathlib import Path

from balans_balance.reasons import SENTENCES

PORTAL = Path(__file__).resolve().parents[1] / "services/api/src/balans_api/static/portal.js"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _portal_sentences() -> tuple[dict[str, str], dict[str, str]]:
    """(code -> sentence, group shape -> sentence) as portal.js writes them."""
    js = PORTAL.read_text(encoding="utf-8")
    codes = dict(re.findall(r'^\s+"([a-z_]+\.[a-z_]+)": t\("((?:[^"\\]|\\.)*)"\)', js, re.M))
    shapes = dict(re.findall(r'^\s+([a-z]+): t\("(group \{group\}: (?:[^"\\]|\\.)*)"\)', js, re.M))
    return codes, shapes


def test_every_reason_has_a_sentence_with_the_figures_balance_gives() -> None:
    codes, shapes = _portal_sentences()
    assert len(codes) > 20
    assert set(codes) <= set(SENTENCES)
    for code, english in SENTENCES.items():
        rule = code.split(".")[1]
        sentence = codes.get(code) or shapes.get(rule)
        assert sentence is not None, code
        given = set(PLACEHOLDER.findall(english)) - {"naming"}
        assert set(PLACEHOLDER.findall(sentence)) <= given, code
