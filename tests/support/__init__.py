"""Shared test helpers: real local servers and fixtures that several test packages reuse."""
