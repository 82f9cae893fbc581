"""The lowest part: keys, signatures and the file steps everything above shares.

- keys.py: Ed25519 keys, key ids, record signatures (over `lotledger/record/v1` + the bytes),
  private keys as PEM PKCS8 on disk (0600).
- note.py: C2SP signed notes and tlog-checkpoint bodies, verifier key strings.
- cosignature.py: C2SP tlog-cosignature, the timestamped line a witness adds to a checkpoint.
- certs.py: a small private CA for mTLS (participant and server certificates).
- files.py: a write that lands whole or not at all, a durable directory, a one-process lock.
- errors.py: this package's errors; all of them mean "these bytes are not acceptable".

This package is the only place that imports pyca/cryptography (keys.py, and certs.py for X.509),
and it imports no other part of lotledger; everything above it sees raw 32-byte public keys,
signature bytes and these errors.
"""
