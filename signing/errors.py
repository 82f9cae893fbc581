"""Errors raised by lotledger.signing: all of them mean "these bytes are not acceptable"."""


class SigningError(Exception):
    """Root of the signing errors; callers at a boundary catch this one."""


class InvalidKey(SigningError):
    """A key is malformed: wrong length, wrong algorithm, unparsable PEM or verifier string."""


class InvalidSignature(SigningError):
    """A signature does not verify over the given bytes with the given key."""


class InvalidNote(SigningError):
    """A signed note or checkpoint is malformed, or carries no valid signature by a trusted key."""


class KeyFileError(SigningError):
    """A key file cannot be used: missing, unreadable, or readable by others."""
