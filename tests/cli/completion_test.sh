#!/bin/bash
# Loads a generated completion script in a real shell and checks what it
# completes. Usage: completion_test.sh bash|zsh|fish DIR [FLIND]
# DIR holds flin.SHELL and flind.SHELL (the build's completions/ folder).
# With FLIND, every long flag `FLIND --help` prints must complete.
set -u
shell=$1
dir=$2
flind=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
failures=0

# complete LINE -> the candidates, one per line, sorted.
complete_line() {
  local prog=${1%% *}
  case $shell in
    bash)
      bash --norc --noprofile -c '
        source "$1" || exit 10
        complete -p "$2" >/dev/null || exit 11
        line=$3
        read -r -a COMP_WORDS <<<"$line"
        [[ $line == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
        COMP_LINE=$line
        COMP_POINT=${#line}
        fn=$(complete -p "$2" | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
        "$fn" "$2" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf "%s\n" "${COMPREPLY[@]}"
      ' _ "$dir/$prog.bash" "$prog" "$1" | sed '/^$/d' | sort
      ;;
    fish)
      fish --no-config -c 'source $argv[1]; or exit 10; complete -C $argv[2]' "$dir/$prog.fish" "$1" |
        cut -f1 | sort
      ;;
    zsh)
      zsh -f "$here/zsh_complete.zsh" "$dir/$prog.zsh" "$1" | tr ' ' '\n' | sed '/^$/d' | sort -u
      ;;
  esac
}

# expect LINE WORD...: the candidates are exactly WORD...
expect() {
  local line=$1
  shift
  local want got
  want=$(printf '%s\n' "$@" | sort)
  got=$(complete_line "$line")
  if [[ "$got" != "$want" ]]; then
    echo "FAIL [$shell] '$line': want [$(echo $want)] got [$(echo $got)]"
    failures=$((failures + 1))
  else
    echo "ok   [$shell] '$line' -> $(echo $got)"
  fi
}

# expect_has LINE WORD...: the candidates include every WORD.
expect_has() {
  local line=$1
  shift
  local got w
  got=$(complete_line "$line")
  for w in "$@"; do
    if ! grep -qxF -- "$w" <<<"$got"; then
      echo "FAIL [$shell] '$line': missing '$w' in [$(echo $got)]"
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok   [$shell] '$line' has $*"
}

# The script must load without any output on stderr.
for prog in flin flind; do
  case $shell in
    bash) err=$(bash --norc --noprofile -c 'source "$1"' _ "$dir/$prog.bash" 2>&1) ;;
    fish) err=$(fish --no-config -c 'source $argv[1]' "$dir/$prog.fish" 2>&1) ;;
    zsh) err=$(zsh -f -c 'autoload -Uz compinit && compinit -u -D && source "$1"' _ "$dir/$prog.zsh" 2>&1) ;;
  esac
  if [[ -n "$err" ]]; then
    echo "FAIL [$shell] loading $prog: $err"
    failures=$((failures + 1))
  else
    echo "ok   [$shell] $prog loads cleanly"
  fi
done

expect "flin m" mdel mget mset
if [[ $shell == zsh ]]; then
  # The installed form: autoloaded through $fpath.
  got=$(FLIN_ZSH_AUTOLOAD=1 zsh -f "$here/zsh_complete.zsh" "$dir/flin.zsh" "flin m" | tr ' ' '\n' |
    sed '/^$/d' | sort -u | tr '\n' ' ')
  if [[ "$got" != "mdel mget mset " ]]; then
    echo "FAIL [zsh autoload] 'flin m': got [$got]"
    failures=$((failures + 1))
  else
    echo "ok   [zsh autoload] 'flin m' -> $got"
  fi
fi
expect "flin comp" completion
expect "flin completion " bash zsh fish
expect "flin --color " always auto never
expect_has "flin get --" --json --raw --no-newline --quiet --addr
expect_has "flin set k v --" --ttl --px --nx --xx --keepttl --value-file
expect_has "flin " get set del mget mset mdel exists ttl expire persist keys scan ping info shell
expect "flin --consistency " linearizable stale
expect "flin cluster " add remove status transfer-leader
expect "flin cluster tr" transfer-leader
expect_has "flin cluster add --" --id
expect_has "flin health --" --wait --timeout
expect_has "flin " cluster health
expect "flind --log-level " debug info warn error
expect_has "flind --" --data-dir --socket --listen --requirepass
expect_has "flind --" --bootstrap --join --initial-cluster --node-id --peer-listen \
  --peer-advertise --cluster-secret-file --request-timeout-ms --tick-ms --snapshot-entries

if [[ -n "$flind" ]]; then
  flind_flags=$("$flind" --help | grep -E '^ +-' | awk '{print $1}' | tr ',' '\n' | grep -E '^--' |
    sort -u)
  [[ -n "$flind_flags" ]] || { echo "FAIL: no flags in flind --help"; failures=$((failures + 1)); }
  expect_has "flind --" $flind_flags
fi

if ((failures > 0)); then
  echo "$failures failure(s)"
  exit 1
fi
