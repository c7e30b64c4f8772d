#!/usr/bin/env bash
# Developer check (not CI): does llama.cpp compute what Magellano computes from an exported GGUF?
#
#   scripts/check_gguf_llamacpp.sh CHECKPOINT_DIR [--type f32|f16|q8_0] [--prompt TEXT] [--tokens N]
#                                  [--magellano build/magellano] [--json OUT.json]
#                                  [--tokenizer DIR [--texts FILE]]
#
# Creates (or reuses) a throwaway venv ($GGUF_VENV, default /tmp/magellano-gguf-venv) with `gguf` and
# `llama-cpp-python` from PyPI (the latter builds llama.cpp's C++: minutes on a small machine),
# exports the checkpoint with `magellano export --format gguf`, and on the CPU:
#   1. checks the file with gguf-py's GGUFReader (architecture, tensor count);
#   2. tokenizes the prompt with both (llama.cpp's vocabulary from the file vs Magellano's tokenizer);
#      with --tokenizer DIR (the checkpoint's tokenizer folder) also a set of texts (built-in: ASCII,
#      spaces, accents, CJK, emoji, bytes that fall back; or the paragraphs of --texts FILE), each with
#      `magellano tokenize --ids` against llama.cpp's tokenize (BOS as the file says);
#   3. decodes N greedy tokens with both from Magellano's prompt ids and compares them;
#   4. compares per-token log-probabilities of Magellano's greedy continuation: llama.cpp's from its
#      logits, Magellano's from `magellano eval` on each prefix (prefix sums of the token NLLs);
#   5. times decoding (tokens/s after the prompt, $GGUF_SPEED_TOKENS tokens, default 128, best of 3) of
#      both: llama.cpp on $GGUF_LLAMA_THREADS CPU threads (default all), Magellano on its OpenCL device (MAGELLANO_DEVICE; PoCL here).
# Prints a report and, with --json, writes it as one object. Exit 1 when the greedy tokens differ.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ckpt="${1:?usage: $0 CHECKPOINT_DIR [--type T] [--prompt TEXT] [--tokens N] [--json OUT]}"
shift
type=f32 prompt="The" ntok=32 magellano="$here/build/magellano" json_out="" tokdir="" texts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --type) type="$2"; shift 2 ;;
    --prompt) prompt="$2"; shift 2 ;;
    --tokens) ntok="$2"; shift 2 ;;
    --magellano) magellano="$2"; shift 2 ;;
    --json) json_out="$2"; shift 2 ;;
    --tokenizer) tokdir="$2"; shift 2 ;;
    --texts) texts="$2"; shift 2 ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done
venv="${GGUF_VENV:-/tmp/magellano-gguf-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import gguf, llama_cpp" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q gguf numpy llama-cpp-python
fi
work="$(mktemp -d /tmp/gguf-check.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$magellano" export --format gguf --checkpoint "$ckpt" --out "$work/model.gguf" --type "$type" >&2

cat > "$work/check.py" <<'PY'
import json, math, os, struct, subprocess, sys, time
import numpy as np
from gguf import GGUFReader
import llama_cpp

magellano, ckpt, gguf_path, prompt, ntok, work = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
tokdir, texts_file = sys.argv[7], sys.argv[8]
report = {"checkpoint": ckpt, "gguf": os.path.getsize(gguf_path), "prompt": prompt, "tokens": ntok,
          "llama_cpp_python": llama_cpp.__version__}

r = GGUFReader(gguf_path)
arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
report["architecture"] = arch
report["gguf_tensors"] = len(r.tensors)
print(f"GGUFReader: architecture {arch}, {len(r.tensors)} tensors, {len(r.fields)} metadata keys")

def mg(*args, timed=False):
    t = time.perf_counter()
    out = subprocess.run([magellano, *args], check=True, capture_output=True, text=True).stdout
    return out, time.perf_counter() - t

def mg_generate(n):
    out, secs = mg("generate", "--checkpoint", ckpt, "--prompt", prompt, "--temperature", "0",
                   "--max-new-tokens", str(n), "--json")
    return json.loads(out.strip().splitlines()[-1]), secs

g, _ = mg_generate(ntok)
prompt_ids, mg_ids = g["prompt_ids"], g["ids"]
report["magellano_prompt_ids"] = prompt_ids
report["magellano_ids"] = mg_ids

n_ctx = len(prompt_ids) + max(ntok, int(os.environ.get("GGUF_SPEED_TOKENS", "128"))) + 8
threads = int(os.environ.get("GGUF_LLAMA_THREADS", str(os.cpu_count())))
report["llama_threads"] = threads
llm = llama_cpp.Llama(model_path=gguf_path, n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
V = llm.n_vocab()
lc_prompt = llm.tokenize(prompt.encode(), add_bos=bool(llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"),
                         special=False)
report["llama_prompt_ids"] = lc_prompt
report["prompt_ids_equal"] = lc_prompt == prompt_ids
print(f"prompt ids: magellano {prompt_ids} / llama.cpp {lc_prompt} -> {'equal' if lc_prompt == prompt_ids else 'DIFFER'}")

if tokdir:
    texts = ["Hello world", "  two leading spaces", "naïve café über", "日本語のテキスト", "emoji 🙂👍🏽 ok",
             "tabs\tand\nnewlines\n\n end", "a  b   c    d", "it's 2024: 1,234.56!", "Ωμέγα ☃ ❤"]
    if texts_file:
        with open(texts_file, encoding="utf-8") as f:
            texts = [t for t in f.read().split("\n\n") if t.strip()]
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    same = 0
    for i, text in enumerate(texts):
        path = os.path.join(work, f"text{i}.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        out, _ = mg("tokenize", "--tokenizer", tokdir, "--in", path, "--ids")
        ours = [int(x) for x in out.split()]
        theirs = llm.tokenize(text.encode(), add_bos=add_bos, special=False)
        same += ours == theirs
        if ours != theirs:
            print(f"text {i} {text[:80]!r}: magellano {ours[:40]} / llama.cpp {theirs[:40]}")
    report["tokenizer_texts"] = len(texts)
    report["tokenizer_texts_equal"] = same
    report["tokenizer_model"] = llm.metadata.get("tokenizer.ggml.model")
    print(f"tokenizer: {same} of {len(texts)} texts tokenize to the same ids ({report['tokenizer_model']} vocabulary)")

def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())

# Greedy decoding with llama.cpp from Magellano's prompt ids; stops at EOS as Magellano does.
eos = llm.token_eos()
llm.reset()
llm.eval(prompt_ids)
lc_ids, lc_logprobs = [], []
for i in range(ntok):
    logits = np.array(llm.scores[llm.n_tokens - 1][:V])
    tok = int(np.argmax(logits))
    lc_ids.append(tok)
    lc_logprobs.append(float(log_softmax(logits)[tok]))
    if tok == eos or i == ntok - 1:
        break
    llm.eval([tok])
report["llama_ids"] = lc_ids
report["greedy_equal"] = lc_ids == mg_ids
print(f"greedy ids: magellano {mg_ids}\n            llama.cpp {lc_ids} -> {'equal' if lc_ids == mg_ids else 'DIFFER'}")

# Per-token log-probabilities of Magellano's continuation, from both.
seq = prompt_ids + mg_ids
llm.reset()
llm.eval(seq)
P = len(prompt_ids)
lc_lp = [float(log_softmax(np.array(llm.scores[P - 1 + k][:V]))[seq[P + k]]) for k in range(len(mg_ids))]

def write_tokens(path, ids, vocab):
    width = 2 if vocab <= 65536 else 4
    with open(path, "wb") as f:
        f.write(b"MGTOKENS" + struct.pack("<IIIIQ", 1, width, vocab, 32, len(ids)))
        f.write(np.asarray(ids, dtype="<u2" if width == 2 else "<u4").tobytes())

cum = {}
for L in range(P, len(seq) + 1):
    if L < 2:
        cum[L] = 0.0
        continue
    path = os.path.join(work, f"prefix{L}.tok")
    write_tokens(path, seq[:L], V)
    out, _ = mg("eval", "--checkpoint", ckpt, "--tokens", path, "--seq-len", str(L), "--batch", "1", "--json")
    j = json.loads(out[out.index("{"):out.rindex("}") + 1])
    cum[L] = j["loss"] * (L - 1)   # the sum of the NLLs of positions 1 .. L-1
mg_lp = [-(cum[P + k + 1] - cum[P + k]) for k in range(len(mg_ids))]
diff = [abs(a - b) for a, b in zip(lc_lp, mg_lp)]
report["magellano_logprobs"] = mg_lp
report["llama_logprobs"] = lc_lp
report["max_abs_logprob_diff"] = max(diff) if diff else 0.0
report["mean_abs_logprob_diff"] = sum(diff) / len(diff) if diff else 0.0
print("per-token log-probabilities (magellano / llama.cpp):")
for k, (a, b) in enumerate(zip(mg_lp, lc_lp)):
    print(f"  {k:3d} id {mg_ids[k]:6d}  {a:10.5f}  {b:10.5f}  |diff| {abs(a - b):.2e}")
print(f"max |diff| {report['max_abs_logprob_diff']:.3e}, mean {report['mean_abs_logprob_diff']:.3e}")

# Decode speed, best of 3 (the machine may be shared): llama.cpp's one-token evals after the prompt on
# its CPU threads; Magellano's from whole processes generating `speed` and 1 new tokens (greedy, no
# EOS stop in between is assumed; the ids actually generated are counted).
speed = int(os.environ.get("GGUF_SPEED_TOKENS", "128"))
best_lc = None
for _ in range(3):
    llm.reset()
    llm.eval(prompt_ids)
    tok, t0 = prompt_ids[-1], time.perf_counter()
    for _ in range(speed):
        llm.eval([tok])
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1][:V]))
    rate = (llm.n_tokens - len(prompt_ids)) / (time.perf_counter() - t0)
    best_lc = max(best_lc or 0, rate)
def best_time(n):
    best, got = None, 0
    for _ in range(3):
        g, t = mg_generate(n)
        best, got = min(best or t, t), len(g["ids"])
    return best, got
t_n, got_n = best_time(speed)
t_1, _ = best_time(1)
report["speed_tokens"] = speed
report["load_average_1min"] = os.getloadavg()[0]
report["llama_decode_tokens_per_s"] = best_lc
report["magellano_decode_tokens_per_s"] = (got_n - 1) / (t_n - t_1) if t_n > t_1 and got_n > 1 else None
print(f"decode (best of 3): llama.cpp {best_lc:.1f} tokens/s (CPU, {threads} threads), "
      f"magellano {report['magellano_decode_tokens_per_s'] or float('nan'):.1f} tokens/s (OpenCL device; "
      f"processes generating {got_n} and 1 tokens)")
json.dump(report, open(os.path.join(work, "report.json"), "w"), indent=1)
sys.exit(0 if report["greedy_equal"] else 1)
PY
set +e
"$venv/bin/python" "$work/check.py" "$magellano" "$ckpt" "$work/model.gguf" "$prompt" "$ntok" "$work" "$tokdir" "$texts"
rc=$?
set -e
if [ -n "$json_out" ] && [ -f "$work/report.json" ]; then cp "$work/report.json" "$json_out"; fi
exit $rc
