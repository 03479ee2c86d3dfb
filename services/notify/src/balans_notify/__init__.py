"""notify: what balans tells people and systems outside it.

- Residents: after each closed month, each account with an e-mail gets its monthly
  consumption information (EU Energy Efficiency Directive, annex VIIa: monthly for remotely
  read meters) in its language, once, with the invoice; from billing's ``InvoiceIssued``.
- Integrators: the events they subscribed to through the api (``invoice.issued``,
  ``alert.opened``, ``alert.resolved``), POSTed to their URL, signed with HMAC-SHA256,
  retried with backoff, logged, and dead after the last attempt.

See docs/notify.md.
"""
