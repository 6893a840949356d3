"""The exec server: run code, commands and unit tests in a sandbox (process namespaces or Docker)."""
