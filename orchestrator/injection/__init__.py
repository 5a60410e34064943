"""Prompt-injection scoring: weighted signals, each with the reason it gives.

Signals are about instructions aimed at the model — overrides, prompt or secret
extraction, personas without rules, turning off approvals, exfiltration, spoofed roles,
instructions hidden in comments or encodings — not about topics: "ignore whitespace",
"developer mode on Android" or a quoted ``'ignore previous instructions'`` regex match
nothing. The signals are data, in ``signals/*.txt`` (format in ``table``); ``engine``
compiles and matches them behind one pass over the word view's tokens for the word
signals (``wordseq``) and one RE2 pass for the raw ones (``prefilter``, ``superset``),
``views`` makes the views of a text they are matched on, ``encoded`` decodes hidden
payloads, ``scoring`` adds up.
"""

from orchestrator.injection.scoring import Detector, Score, score_injection
from orchestrator.injection.views import Views, views

__all__ = ["Detector", "Score", "Views", "score_injection", "views"]
