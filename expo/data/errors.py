"""The one exception type for unusable datasets."""


class DatasetError(Exception):
    """A dataset file is missing or malformed. The message is one line: the file, what is wrong, and the
    command that fixes it."""
