"""The subcommands of the `linksync` command (see linksync.cli)."""
