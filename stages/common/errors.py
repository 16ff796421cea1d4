"""The one exception type stages raise for problems the user can fix."""


class StageError(Exception):
    """A one-line message naming the file or setting at fault and the fix."""
