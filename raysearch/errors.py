"""The one kind of error a command prints as a single line (and exits 2 on): input the user
can fix (a path, a file, a key, a setting). Every other exception is a bug and keeps its
traceback. Each room raises its own subclass, named for what was wrong."""


class UserError(ValueError):
    """Bad input: the message names the file, key or setting and what is wrong with it."""
