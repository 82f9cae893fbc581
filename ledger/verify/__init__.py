"""Pure verifiers that trust no server: the whole-log state machine (verifier.py), its
worker-process pipeline with the same verdict (pipeline.py), the saved verifier state
(state.py), the hash-only check (hashes.py) and the start of an increment bundle
(increment.py). Drivers (audit/) feed them bytes; they admit or raise VerificationFailed."""
