"""Pure verifiers that trust no server: the whole-log state machine, its worker-process
pipeline, the saved verifier state, the hash-only check and the increment checker. Drivers
(audit/) feed them bytes; they admit or raise VerificationFailed."""
