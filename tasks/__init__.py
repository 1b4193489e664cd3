"""Composable Nornir task functions, one module per concern."""
