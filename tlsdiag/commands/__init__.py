"""One module per ``tlsdiag`` subcommand, each with ``main(argv) -> int``: the application
layer, the only code that imports both :mod:`sensor` and :mod:`analyzer` (nothing imports it)."""
