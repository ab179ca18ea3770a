"""Local infrastructure for development and tests: launchers for the services' dependencies."""
