"""Ed25519 keys, key ids, record signatures and C2SP signed-note checkpoints.

This package is the only place that imports pyca/cryptography; everything above it sees raw
32-byte public keys, signature bytes and this package's errors.
"""
