"""Mark answer files against a key: `mark_submission(key, answers) -> MarkReport`."""

from marker.core import mark_submission

__all__ = ["mark_submission"]
