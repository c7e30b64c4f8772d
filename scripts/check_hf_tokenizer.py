#!/usr/bin/env python3
"""Compare `magellano tokenize --ids` with Hugging Face `tokenizers` on a tokenizer.json folder.

An optional developer check (not run by the tests; needs `pip install tokenizers`):

  python3 scripts/check_hf_tokenizer.py --tokenizer DIR [--magellano build/magellano] \
      [--cases FILE --separator SEP] [--random N]

Every case is encoded by both, as transformers does by default (special tokens in the text
matched, the post-processor's template added: magellano's --allow-special, no --no-template).
The cases: the built-in strings below, the inputs of a case file (split at SEP), and N random
strings made of letters, digits, punctuation, whitespace, accents, CJK, emoji and the folder's
added tokens. Prints each mismatch and exits 1 if there was any.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

BUILTIN = [
    "Hello world", "I'm here, they'LL go", "  leading and trailing  ", "a\n\nb\r\n\tc",
    "123456789 1,234.5", "naïve café über", "日本語のテキスト", "emoji 🙂👍🏽 ok", "it's  \n  'S",
    "x" * 300, " " * 50 + "y", "", "<|endoftext|>", "tab\tseparated\tvalues\n",
]


def random_case(rng, added):
    atoms = ["a", "Z", "the", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "1", "2024", ".", "!!", "?",
             "é", "ß", "中", "文", "🙂", "\u00a0", "\u3000", "_", "-", "(", ")", "e\u0301", "\u0323\u0307",
             "\u1100\u1161", "\u11a8", "\u212b", "\u0958"] + added
    return "".join(rng.choice(atoms) for _ in range(rng.randint(1, 40)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", required=True, help="folder holding tokenizer.json")
    ap.add_argument("--magellano", default=os.path.join(os.path.dirname(__file__), "..", "build", "magellano"))
    ap.add_argument("--cases", help="a file of inputs separated by --separator")
    ap.add_argument("--separator", default="\n__gpt2_case__\n")
    ap.add_argument("--random", type=int, default=200, help="random strings to add (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from tokenizers import Tokenizer  # pip install tokenizers

    hf = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    cases = list(BUILTIN)
    if args.cases:
        with open(args.cases, encoding="utf-8") as f:
            cases += [c for c in f.read().split(args.separator)][:-1]
    rng = random.Random(args.seed)
    added = [t.content for t in hf.get_added_tokens_decoder().values()]
    cases += [random_case(rng, added) for _ in range(args.random)]

    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "case.txt")
        for i, text in enumerate(cases):
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            want = hf.encode(text).ids
            run = subprocess.run([args.magellano, "tokenize", "--tokenizer", args.tokenizer, "--in", path, "--ids",
                                  "--allow-special"], capture_output=True, text=True)
            got = [int(x) for x in run.stdout.split()] if run.returncode == 0 else run.stderr.strip()
            if got != want:
                bad += 1
                print(f"case {i} {text!r}:\n  tokenizers: {want}\n  magellano:  {got}")
    print(f"{len(cases) - bad} of {len(cases)} cases agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
