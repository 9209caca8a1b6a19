"""The `fastrnn` command line: a thin Click shell over the fastrnn library."""
