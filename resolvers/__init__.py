"""Thin async functions per domain: read the Context, call services and loaders."""
