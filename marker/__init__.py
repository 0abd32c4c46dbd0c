"""Mark answer files against a key: `mark_submission(key, answers) -> MarkReport`."""

__all__ = ["mark_submission"]


def __getattr__(name: str):
    # Imported on first use, so `import marker.mathread` does not load the whole marker.
    if name == "mark_submission":
        from marker.core import mark_submission

        return mark_submission
    raise AttributeError(f"module 'marker' has no attribute {name!r}")
