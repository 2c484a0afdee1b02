"""Cluster DNS per the kubernetes/dns specification (schema 1.0.1)."""
