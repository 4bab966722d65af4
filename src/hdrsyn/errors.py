"""The one exception type that hdrsyn raises for bad input."""


class HdrsynError(ValueError):
    """Bad input or an impossible request; the message names the thing and the fix.

    The command line prints the message on one line and exits with status 2.
    """
