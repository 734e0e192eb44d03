"""The one exception type users see without a traceback."""


class CatdogError(Exception):
    """A problem the user can fix (bad path, bad setting, bad file); printed as one paragraph."""
