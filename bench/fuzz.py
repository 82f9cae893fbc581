"""Coverage-guided fuzzing (atheris) of the targets in tests/fuzz_targets.py.

    python bench/fuzz.py TARGET [-max_total_time=600] [corpus_dir]   (an empty corpus_dir is seeded
                                                                      with a valid input: tests/fuzz_targets.seeds)
    python bench/fuzz.py --list

A finding is any exception other than our refusals (LedgerError, SigningError, ScanRefused);
atheris stops and writes the crashing input to crash-*. Needs `pip install '.[fuzz]'` (atheris) and the
installed lotledger package.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import atheris  # noqa: E402

with atheris.instrument_imports():
    import fuzz_targets  # noqa: E402


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] == "--list":
        print("\n".join(sorted(fuzz_targets.TARGETS)))
        return
    target = fuzz_targets.TARGETS[sys.argv[1]]
    corpus = [Path(a) for a in sys.argv[2:] if not a.startswith("-")]
    if corpus and not any(corpus[0].iterdir()):
        # Start from inputs that parse, so mutation reaches past the first refusal.
        for i, seed in enumerate(fuzz_targets.seeds()[sys.argv[1]]):
            (corpus[0] / f"seed-{i}").write_bytes(seed)

    def one(data: bytes) -> None:
        fuzz_targets.run(target, data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
