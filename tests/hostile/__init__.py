"""Helpers for the reliability and security tests: hostile specs, papers and PDF checks."""
