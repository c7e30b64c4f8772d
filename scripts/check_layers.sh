#!/usr/bin/env bash
# Checks that the library's includes follow the layer order: a file in include/magellano/<layer>/
# or src/<layer>/ may include only its own layer and the layers below it. Every include that goes
# up the order is listed, and the script exits 1.
#
#   scripts/check_layers.sh [--self-test] [ROOT]
#
# ROOT defaults to the repository this script is in. --self-test first runs the check on a small
# generated tree with one upward include and requires it to be found (so a broken check cannot
# pass). CTest runs it as `check_layers` (label unit), so scripts/test.sh does.
#
# Includes are read as written: "magellano/<layer>/..." (quotes or angle brackets), and private
# headers by a path relative to the including file ("check.hpp", "../ops/check.hpp"), which
# count as the layer of the folder they resolve to. Other includes (the standard library,
# OpenCL, Boost) are not checked. apps/ sits above every layer and may include anything.
set -euo pipefail

# The layers, bottom up. This is the one place the order is written down (DESIGN.md refers here).
LAYERS=(runtime tensor autograd ops quant io data optim nn generate train dist chat serve)

# Upward includes accepted, as "FILE INCLUDE", each with its reason (none today).
ALLOWED=()

layer_rank() {  # prints the position of $1 in LAYERS, or -1
  local i
  for i in "${!LAYERS[@]}"; do
    if [[ ${LAYERS[$i]} == "$1" ]]; then echo "$i"; return; fi
  done
  echo -1
}

# The layer of a repository path (src/<layer>/... or include/magellano/<layer>/...), or "".
layer_of() {
  case $1 in
    include/magellano/*/*) local rest=${1#include/magellano/}; echo "${rest%%/*}" ;;
    src/*/*) local rest=${1#src/}; echo "${rest%%/*}" ;;
    *) echo "" ;;
  esac
}

is_allowed() {
  local entry
  for entry in "${ALLOWED[@]}"; do
    [[ $entry == "$1 $2" ]] && return 0
  done
  return 1
}

# Checks the tree at $1; prints each problem and returns 1 when there is any.
check_tree() {
  local root=$1 problems=0 files=0 file layer rank line target kind resolved to to_rank n
  local include_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"])([^>"]+)[>"]'
  while IFS= read -r file; do
    files=$((files + 1))
    layer=$(layer_of "$file")
    rank=$(layer_rank "$layer")
    if [[ $rank -lt 0 ]]; then
      echo "$file: '$layer' is not a layer; add the folder to LAYERS in scripts/check_layers.sh"
      problems=$((problems + 1))
      continue
    fi
    n=0
    while IFS= read -r line; do
      n=$((n + 1))
      [[ $line =~ $include_re ]] || continue
      kind=${BASH_REMATCH[1]}
      target=${BASH_REMATCH[2]}
      if [[ $target == magellano/*/* ]]; then
        to=${target#magellano/}
        to=${to%%/*}
      elif [[ $kind == '"' ]]; then  # a private header next to (or near) the including file
        resolved=$(realpath -m --relative-to="$root" "$root/$(dirname "$file")/$target")
        to=$(layer_of "$resolved")
        [[ -n $to ]] || continue
      else
        continue
      fi
      to_rank=$(layer_rank "$to")
      if [[ $to_rank -lt 0 ]]; then
        echo "$file:$n: includes $target, which is in no layer of LAYERS"
        problems=$((problems + 1))
      elif [[ $to_rank -gt $rank ]] && ! is_allowed "$file" "$target"; then
        echo "$file:$n: $layer includes $to ($target), but $to is above $layer; move the code to" \
             "the lowest layer that needs it"
        problems=$((problems + 1))
      fi
    done < "$root/$file"
  done < <(cd "$root" && find include/magellano src -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' \) | sort)
  if [[ $problems -gt 0 ]]; then
    echo "check_layers: $problems include(s) against the layer order (${LAYERS[*]}, then apps)"
    return 1
  fi
  echo "check_layers: $files files follow the layer order (${LAYERS[*]}, then apps)"
}

# A tree with one include up the order (runtime -> train) and includes that are fine; the check
# must report exactly that one.
self_test() {
  local tmp out
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/include/magellano/runtime" "$tmp/include/magellano/train" "$tmp/src/train"
  printf '#include <vector>\n#include "magellano/train/config.hpp"\n' > "$tmp/include/magellano/runtime/bad.hpp"
  printf '#include "magellano/runtime/bad.hpp"\n' > "$tmp/include/magellano/train/config.hpp"
  printf '#include "magellano/train/config.hpp"\n#include "local.hpp"\n' > "$tmp/src/train/config.cpp"
  printf '#include "../../include/magellano/runtime/bad.hpp"\n' > "$tmp/src/train/local.hpp"
  if out=$(check_tree "$tmp"); then
    echo "check_layers self-test: the upward include in runtime/bad.hpp was not found:"
    echo "$out"
    return 1
  fi
  if [[ $(grep -c 'is above' <<< "$out") -ne 1 || $out != *"include/magellano/runtime/bad.hpp:2: runtime includes train"* ]]; then
    echo "check_layers self-test: expected exactly runtime/bad.hpp:2 to be reported, got:"
    echo "$out"
    return 1
  fi
  echo "check_layers self-test: an upward include is reported"
}

if [[ ${1:-} == --self-test ]]; then
  shift
  self_test
fi
check_tree "$(realpath "${1:-$(dirname "$0")/..}")"
