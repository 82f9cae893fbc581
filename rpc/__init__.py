"""The gRPC layer, above trace/ and ledger/: adapters between protobuf and the domain.

- servicer.py: each RPC names the caller, calls the domain and builds the response.
- append_stream.py: what Append and AppendStream share, and the AppendStream pipeline.
- status.py: the one table from domain errors to status codes (with google.rpc details), used
  by the servicer and, in reverse, by the client.
- server.py: assembles the server (servicer, health, reflection, TLS/mTLS, the call gate).
- gate.py: the call gate, a server interceptor: every call counted per caller and in total
  from the moment it opens, streams held to half the request threads, stuck streams ended.
- client.py: LedgerClient, which partners, audit/, the scanner and the web app use.
- limits.py, ratelimit.py: the server's limits from TOML, and per-participant token buckets.
"""
