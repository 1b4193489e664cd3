"""The scripts people run; each is `python -m runbooks.NAME` with `main(argv) -> int`."""
