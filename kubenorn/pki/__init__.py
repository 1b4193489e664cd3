"""kubenorn's PKI: plan the certificates an inventory needs, issue, check and rotate them.

Only the `cryptography` library is used; the CA private keys never leave the state directory.
"""
