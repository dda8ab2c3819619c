"""Keep secrets (API keys, tokens) out of everything alphadrive writes or prints."""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "<redacted>"
# A name is secret when its last part is one of these words: ``api_key``, ``OPENAI_API_KEY``, ``hf_token``;
# not ``api_key_env`` (which names where a key lives), ``max_tokens`` or ``tokenizer.json``.
_SECRET_NAME = re.compile(
    r"(^|[_.-])(api[_-]?key|apikey|token|secret|password|passwd|authorization|credentials?)$", re.IGNORECASE
)
_MIN_SECRET_LENGTH = 8
# Variables named by a config's pointer keys (``api_key_env: TEACHER_KEY``): their values are secrets too.
_NAMED_SECRET_VARIABLES: set[str] = set()
_POINTER_SUFFIX = "_env"


def _secret_values_from_environment() -> list[str]:
    """Values of environment variables whose names look like secrets, longest first."""
    values = {
        value
        for name, value in os.environ.items()
        if (_SECRET_NAME.search(name) or name in _NAMED_SECRET_VARIABLES) and len(value) >= _MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def note_secret_variables(config: Any) -> None:
    """Treat the environment variables that ``config``'s pointer keys name (``api_key_env: TEACHER_KEY``, at any
    depth) as secrets from now on: their values are redacted wherever they appear, whatever they are called."""
    if isinstance(config, dict):
        for key, value in config.items():
            if (
                isinstance(value, str)
                and str(key).endswith(_POINTER_SUFFIX)
                and is_secret_key(str(key).removesuffix(_POINTER_SUFFIX))
            ):
                _NAMED_SECRET_VARIABLES.add(value)
            note_secret_variables(value)


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret value (``api_key``), not a pointer to one (``api_key_env``)."""
    return bool(_SECRET_NAME.search(key))


# Credentials written into a URL: the password of ``scheme://user:password@host``, a key-like query parameter.
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")
_URL_KEY_PARAMETER = re.compile(r"([?&](?:api[_-]?key|key|token|access[_-]?token)=)[^&\s'\"]+", re.IGNORECASE)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Replace every known secret value (from the environment unless given) and every credential written into a
    URL inside ``text``."""
    for secret in _secret_values_from_environment() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(rf"\g<1>{REDACTED}@", text)
    return _URL_KEY_PARAMETER.sub(rf"\g<1>{REDACTED}", text)


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """Return a deep copy of ``value`` with secret-named keys and secret values replaced."""
    secrets = _secret_values_from_environment() if secrets is None else secrets
    if isinstance(value, dict):
        return {
            key: (REDACTED if is_secret_key(str(key)) and item not in (None, "") else redact(item, secrets))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(item, secrets) for item in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value
