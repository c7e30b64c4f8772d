#!/usr/bin/env python3
"""Compare `magellano tokenize --ids` / `--decode` with Hugging Face `tokenizers` on tokenizer.json folders.

An optional developer check (not run by the tests; needs `pip install tokenizers`, and for
--make-spm also `sentencepiece`):

  python3 scripts/check_hf_tokenizer.py --tokenizer DIR [--magellano build/magellano] \
      [--cases FILE --separator SEP] [--random N] [--corpus FILE --chunk BYTES --chunks N] [--json OUT]
  python3 scripts/check_hf_tokenizer.py --make-spm DIR [--train FILE ...] [--vocab-size N] ... [--json OUT]

Every case is encoded by both, as transformers does by default (special tokens in the text
matched, the post-processor's template added: magellano's --allow-special, no --no-template), and
the ids are decoded by both (skip_special_tokens=False). The cases: the built-in strings below, the
inputs of a case file (split at SEP), N random strings made of letters, digits, punctuation,
whitespace, accents, CJK, emoji and the folder's added tokens, and N chunks of a corpus file.

--make-spm DIR trains a SentencePiece BPE model (byte_fallback, sentencepiece's trainer) on the
--train files, converts it to tokenizer.json the way transformers' LlamaConverter does (merges from
SentencePieceExtractor: every split of every piece, ordered by the piece's score) in three spellings
-- DIR/legacy (Prepend + Replace normalizer, Llama 2 / Jamba), DIR/metaspace-first and
DIR/metaspace-always (Metaspace pre-tokenizer, legacy = False) -- and checks each folder.
Prints each mismatch and exits 1 if there was any.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

BUILTIN = [
    "Hello world", "I'm here, they'LL go", "  leading and trailing  ", "a\n\nb\r\n\tc",
    "123456789 1,234.5", "naïve café über", "日本語のテキスト", "emoji 🙂👍🏽 ok", "it's  \n  'S",
    "x" * 300, " " * 50 + "y", "", "<|endoftext|>", "tab\tseparated\tvalues\n",
    " leading space", "<s>after bos", "a<s>b</s> c", "  ", "\u2581already\u2581metaspace", "Ωμέγα ☃ \U0001F600\U0001F44D\U0001F3FD",
    "\x00\x01 control \x7f", "मराठी ភាសា ❤", "<0x41> literal",
]

META = "\u2581"


def make_spm_folders(out, train_files, vocab_size):
    """A SentencePiece BPE model converted to tokenizer.json as transformers' LlamaConverter does."""
    import sentencepiece as spm  # pip install sentencepiece
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(out, "spm")
    spm.SentencePieceTrainer.train(input=",".join(train_files), model_prefix=prefix, vocab_size=vocab_size,
                                   model_type="bpe", byte_fallback=True, character_coverage=0.9995,
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(sp.get_piece_size())}
    merges = []  # transformers' SentencePieceExtractor.extract(vocab_scores)
    for piece, score in scores.items():
        local = [(piece[:i], piece[i:], score) for i in range(1, len(piece))
                 if piece[:i] in vocab and piece[i:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges = [(a, b) for a, b, _ in sorted(merges, key=lambda m: m[2], reverse=True)]
    folders = []
    for name, legacy, scheme in (("legacy", True, None), ("metaspace-first", False, "first"),
                                 ("metaspace-always", False, "always")):
        tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
        tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
        if legacy:
            tok.normalizer = normalizers.Sequence([normalizers.Prepend(META), normalizers.Replace(" ", META)])
        else:
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme=scheme, split=False)
        tok.decoder = decoders.Sequence([decoders.Replace(META, " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(content=" ", left=1)])
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", vocab["<s>"])])
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump({"bos_token_id": vocab["<s>"], "eos_token_id": vocab["</s>"], "pad_token_id": vocab["<unk>"]}, f)
        folders.append(folder)
    return folders


def check_folder(args, folder, cases):
    from tokenizers import Tokenizer  # pip install tokenizers

    hf = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        path, ids_path = os.path.join(tmp, "case.txt"), os.path.join(tmp, "ids.txt")
        for i, text in enumerate(cases):
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            want = hf.encode(text).ids
            run = subprocess.run([args.magellano, "tokenize", "--tokenizer", folder, "--in", path, "--ids",
                                  "--allow-special"], capture_output=True, text=True)
            got = [int(x) for x in run.stdout.split()] if run.returncode == 0 else run.stderr.strip()
            if got != want:
                bad += 1
                print(f"{folder} case {i} {text[:200]!r}:\n  tokenizers: {want[:60]}\n  magellano:  {got[:60] if isinstance(got, list) else got}")
                continue
            with open(ids_path, "w") as f:
                f.write(" ".join(map(str, want)))
            run = subprocess.run([args.magellano, "tokenize", "--tokenizer", folder, "--in", ids_path, "--decode"],
                                 capture_output=True)
            decoded = run.stdout.decode("utf-8", errors="surrogateescape") if run.returncode == 0 else run.stderr
            if decoded != hf.decode(want, skip_special_tokens=False):
                bad += 1
                print(f"{folder} case {i} decode:\n  tokenizers: {hf.decode(want, skip_special_tokens=False)[:200]!r}"
                      f"\n  magellano:  {decoded[:200]!r}")
    print(f"{folder}: {len(cases) - bad} of {len(cases)} cases agree (ids and decoded text)")
    return bad


def random_case(rng, added):
    atoms = ["a", "Z", "the", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "1", "2024", ".", "!!", "?",
             "é", "ß", "中", "文", "🙂", "\u00a0", "\u3000", "_", "-", "(", ")", "e\u0301", "\u0323\u0307",
             "\u1100\u1161", "\u11a8", "\u212b", "\u0958"] + added
    return "".join(rng.choice(atoms) for _ in range(rng.randint(1, 40)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", help="folder holding tokenizer.json")
    ap.add_argument("--make-spm", help="train and convert SentencePiece models into this folder, then check them")
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "..", "shared", "data", "corpus")
    ap.add_argument("--train", nargs="+", default=[os.path.join(data, "tinyshakespeare.txt"),
                                                   os.path.join(data, "tinystories_train_head_944KB.txt")])
    ap.add_argument("--vocab-size", type=int, default=4000)
    ap.add_argument("--magellano", default=os.path.join(here, "..", "build", "magellano"))
    ap.add_argument("--cases", help="a file of inputs separated by --separator")
    ap.add_argument("--separator", default="\n__gpt2_case__\n")
    ap.add_argument("--random", type=int, default=200, help="random strings to add (default 200)")
    ap.add_argument("--corpus", help="a text file whose chunks are added as cases")
    ap.add_argument("--chunk", type=int, default=4000, help="corpus chunk size in characters")
    ap.add_argument("--chunks", type=int, default=50, help="corpus chunks to add")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="append one JSON line per folder (cases, agreeing cases, versions) to this file")
    args = ap.parse_args()
    if bool(args.tokenizer) == bool(args.make_spm):
        ap.error("pass --tokenizer DIR or --make-spm DIR")
    folders = make_spm_folders(args.make_spm, args.train, args.vocab_size) if args.make_spm else [args.tokenizer]
    if args.make_spm and not args.corpus:
        args.corpus = args.train[0]

    from tokenizers import Tokenizer  # pip install tokenizers

    bad = 0
    for folder in folders:
        hf = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        cases = list(BUILTIN)
        if args.cases:
            with open(args.cases, encoding="utf-8") as f:
                cases += [c for c in f.read().split(args.separator)][:-1]
        rng = random.Random(args.seed)
        added = [t.content for t in hf.get_added_tokens_decoder().values()]
        cases += [random_case(rng, added) for _ in range(args.random)]
        if args.corpus:
            with open(args.corpus, encoding="utf-8") as f:
                text = f.read()
            for _ in range(args.chunks):
                begin = rng.randrange(max(1, len(text) - args.chunk))
                cases.append(text[begin:begin + args.chunk])
        failed = check_folder(args, folder, cases)
        bad += failed
        if args.json:
            import platform
            import time
            import tokenizers
            row = {"tokenizer": os.path.basename(os.path.normpath(folder)), "vocab": hf.get_vocab_size(),
                   "cases": len(cases), "agree": len(cases) - failed, "tokenizers": tokenizers.__version__,
                   "date": time.strftime("%Y-%m-%d"), "host": platform.processor() or platform.machine()}
            if args.make_spm:
                import sentencepiece
                row.update(sentencepiece=sentencepiece.__version__, vocab_size=args.vocab_size, train=[os.path.basename(t) for t in args.train],
                           corpus=os.path.basename(args.corpus), chunks=args.chunks, random=args.random, seed=args.seed)
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
