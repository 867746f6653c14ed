"""Supplier layouts and reply column maps shipped with the package (data; see README.md)."""
