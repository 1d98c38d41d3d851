"""One error family for the whole toolkit, so the CLI can report any of them cleanly."""


class JstipError(Exception):
    """A problem the user can fix; the message names the record, the bad value and the fix."""


class ManifestError(JstipError):
    """A manifest is missing, unreadable or does not match its schema."""


class AudioError(JstipError):
    """An audio file cannot be read, or the requested stretch lies outside it."""
