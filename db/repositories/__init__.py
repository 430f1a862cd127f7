"""Repositories: the only code that writes SQL. Batch methods serve the dataloaders."""
