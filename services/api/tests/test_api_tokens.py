"""Verified access tokens are kept per process, and a kept token still ends at its expiry."""

from __future__ import annotations

import time

import jwt
import pytest

from balans_api import security
from balans_api.security import VerifiedTokens, issue_token

SECRET = "a-test-secret-of-at-least-32-bytes!"


def test_a_kept_token_ends_at_its_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = VerifiedTokens(SECRET)
    token = issue_token(SECRET, 7, "consumer", ttl_s=900)
    assert tokens.user_id(token) == 7
    assert tokens.user_id(token) == 7  # kept: answered without decoding again
    expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(security.time, "time", lambda: expiry)
    assert tokens.user_id(token) is None
    monkeypatch.setattr(security.time, "time", lambda: expiry - 1)
    assert tokens.user_id(token) == 7  # decoded again: still valid a second before


def test_a_token_that_fails_is_refused_every_time() -> None:
    tokens = VerifiedTokens(SECRET)
    forged = issue_token("another-secret-of-at-least-32-bytes", 7, "admin", ttl_s=900)
    expired = jwt.encode({"sub": "7", "exp": int(time.time()) - 1}, SECRET, algorithm="HS256")
    no_expiry = jwt.encode({"sub": "7"}, SECRET, algorithm="HS256")
    for token in (forged, expired, no_expiry, "not a token", forged):
        assert tokens.user_id(token) is None
    good = issue_token(SECRET, 8, "admin", ttl_s=900)
    assert tokens.user_id(good + "x") is None  # a changed signature
    assert tokens.user_id(good) == 8


def test_the_kept_tokens_stay_bounded() -> None:
    tokens = VerifiedTokens(SECRET, max_entries=3)
    issued = [issue_token(SECRET, user, "consumer", ttl_s=900) for user in range(10)]
    for user, token in enumerate(issued):
        assert tokens.user_id(token) == user
        assert len(tokens._kept) <= 3
