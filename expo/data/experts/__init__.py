"""Scripted experts that generate the embedded datasets."""
