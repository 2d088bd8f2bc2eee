"""Readers and writers: one schema source per file format."""
