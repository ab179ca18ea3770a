"""The assignment service."""
