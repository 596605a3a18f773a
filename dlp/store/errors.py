"""The store's exceptions: each message is operator- or analyst-facing and never carries content."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked (unusable key, unwritable directory, failed write)."""


class IntegrityError(StoreError):
    """Stored data failed its integrity check (tampered ciphertext, wrong key, broken audit chain)."""


class AuditError(StoreError):
    """The audit record could not be written, so the audited action was refused."""


class NotFound(StoreError):
    """No incident with that id."""


class InvalidAction(StoreError):
    """The action does not apply to this incident in its current state (release of a web incident, ...)."""


class ReleaseError(StoreError):
    """The next hop did not accept a release; the incident is back in its previous state."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class ReleaseInProgress(InvalidAction):
    """Another release of the same incident is under way (or was interrupted; see `release(force=True)`)."""
