"""Groups of `vigil` subcommands, registered by `vigil.cli`."""
