"""Study 10's character-model data: lines "K<filler>=K", where K is one of four key letters and
the filler L random lowercase letters, L drawn uniformly from [LO, HI]. A character model that
reads '=' can name the next character only by remembering the key, L + 1 steps back; the filler
is unpredictable, so the rest of the text carries no shortcut. Writes keyed-LO-HI.txt here.

    python studies/make_keyed_text.py LO HI [LINES]
"""
import sys
from pathlib import Path

import numpy as np

KEYS = "ABCD"
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def keyed_text(lo, hi, lines, seed=0):
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, len(KEYS), lines)
    lags = rng.integers(lo, hi + 1, lines)
    return "".join(f"{KEYS[k]}{''.join(rng.choice(LETTERS, n))}={KEYS[k]}\n" for k, n in zip(keys, lags))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    lines = int(sys.argv[3]) if len(sys.argv) == 4 else 20000
    if not 1 <= lo <= hi:
        sys.exit(f"LO, HI: expected 1 <= LO <= HI; got {lo}, {hi}")
    out = Path(__file__).resolve().parent / f"keyed-{lo}-{hi}.txt"
    out.write_text(keyed_text(lo, hi, lines))
    print(f"wrote {out}")
