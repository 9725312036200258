"""The exception types for unusable datasets."""


class DatasetError(Exception):
    """A dataset file is missing or malformed. The message is one line: the file, what is wrong, and the
    command that fixes it."""


class DatasetMissing(DatasetError):
    """The dataset is not on disk at all (as opposed to present but unusable). Its fix downloads or
    generates it, where a present file's fix has to replace it (`fetch --force`): plain `fetch` skips a
    file that is there, so the two cases need different commands (and verify reports them as 'missing'
    and 'malformed')."""
