"""The one exception type users see without a traceback."""

SHOWN = 5  # files an error names; the rest are in its details file


class CatdogError(Exception):
    """A problem the user can fix (bad path, bad setting, bad file); printed as one paragraph.

    `details` ({file name: lines}): long lists the message names only the first few of; an entry point writes
    them into its run directory."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}


def first_few(items, details_file: str) -> str:
    """`items` for a message: all of them, or the first `SHOWN`, the count and where the rest are listed."""
    items = list(items)
    if len(items) <= SHOWN:
        return "; ".join(items)
    return f"{'; '.join(items[:SHOWN])}; and {len(items) - SHOWN:,} more (all {len(items):,} in {details_file})"
