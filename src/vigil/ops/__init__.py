"""Running Vigil as a service: child processes, systemd, backups."""
