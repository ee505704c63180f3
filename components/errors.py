"""The one exception type the CLI turns into a one-line message instead of a stack trace."""


class UserError(Exception):
    """A mistake the user can fix (a missing file, a bad config field); the message names it."""
