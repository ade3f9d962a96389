"""The masking helper lives in :mod:`nerloop.redact`; this module is its old import path."""

from nerloop.redact import (
    KNOWN_KEY_ENVS,
    MASK,
    RedactingFilter,
    redact,
    register_known_secrets,
    register_secret,
)

__all__ = [
    "KNOWN_KEY_ENVS",
    "MASK",
    "RedactingFilter",
    "redact",
    "register_known_secrets",
    "register_secret",
]
