"""The long-running `reconciler run`: scheduling, reload, metrics and health, logging, systemd notify."""
