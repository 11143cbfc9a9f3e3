#!/bin/bash
# The man pages render without a single groff warning, and document every
# flag the programs print in --help (and every flin subcommand, exit status
# and environment variable). Usage: man_test.sh FLIN FLIND|"" MANDIR
set -u
flin=$1
flind=$2
mandir=$3
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# Roff to plain words: drop font switches and escapes around dashes.
plain() { sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\(em/--/g' "$1"; }

# flags_of HELP_TEXT: the option names at the start of each option line.
flags_of() {
  grep -E '^ +-' | awk '{print $1}' | tr ',' '\n' | grep -E '^-' | sed 's/=.*//' | sort -u
}

has_flag() {  # has_flag FILE FLAG
  grep -qE -- "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)" "$1"
}

for page in flin.1 flind.8; do
  if [[ ! -s "$mandir/$page" ]]; then
    fail "$mandir/$page missing (is scdoc installed? was the build run?)"
    continue
  fi
  warnings=$(groff -man -ww -z "$mandir/$page" 2>&1)
  [[ $? -eq 0 && -z "$warnings" ]] || fail "$page: groff warnings: $warnings"
  for section in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
    grep -q "^\.SH $section" "$mandir/$page" || fail "$page: no $section section"
  done
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plain "$mandir/flin.1" >"$tmp/flin.txt"
plain "$mandir/flind.8" >"$tmp/flind.txt"

# flin: global flags, then each subcommand's.
help=$("$flin" --help) || fail "flin --help failed"
checked=0
for flag in $(flags_of <<<"$help"); do
  has_flag "$tmp/flin.txt" "$flag" || fail "flin.1 does not document $flag (from flin --help)"
  checked=$((checked + 1))
done
subcommands=$(sed -n '/^Subcommands:/,/^$/p' <<<"$help" | awk 'NR > 1 && NF {print $1}')
[[ -n "$subcommands" ]] || fail "no subcommands found in flin --help"
for sub in $subcommands; do
  grep -qF "\\fB$sub\\fR" "$mandir/flin.1" || fail "flin.1 does not document the command $sub"
  subhelp=$("$flin" "$sub" --help) || fail "flin $sub --help failed"
  for flag in $(flags_of <<<"$subhelp"); do
    has_flag "$tmp/flin.txt" "$flag" || fail "flin.1 does not document $flag (from flin $sub --help)"
    checked=$((checked + 1))
  done
  # Nested commands (flin cluster status): documented as *sub* *nested*.
  nested=$(sed -n '/^Subcommands:/,/^$/p' <<<"$subhelp" | awk 'NR > 1 && NF {print $1}')
  for n in $nested; do
    grep -qF "\\fB$sub\\fR \\fB$n\\fR" "$mandir/flin.1" ||
      fail "flin.1 does not document the command $sub $n"
    nhelp=$("$flin" "$sub" "$n" --help) || fail "flin $sub $n --help failed"
    for flag in $(flags_of <<<"$nhelp"); do
      has_flag "$tmp/flin.txt" "$flag" ||
        fail "flin.1 does not document $flag (from flin $sub $n --help)"
      checked=$((checked + 1))
    done
  done
done
for code in 0 1 2 3 4 5; do
  grep -qE "^ +$code +[a-z]" <<<"$help" || fail "flin --help does not explain exit status $code"
  grep -qF "\\fB$code\\fR" "$mandir/flin.1" || fail "flin.1 does not explain exit status $code"
done
for var in FLIN_ADDR FLIN_PASSWORD NO_COLOR XDG_DATA_HOME XDG_STATE_HOME; do
  grep -qF "$var" "$tmp/flin.txt" || fail "flin.1 does not mention $var"
done

# flind: every flag of flind --help.
if [[ -n "$flind" ]]; then
  fhelp=$("$flind" --help) || fail "flind --help failed"
  for flag in $(flags_of <<<"$fhelp"); do
    has_flag "$tmp/flind.txt" "$flag" || fail "flind.8 does not document $flag (from flind --help)"
    checked=$((checked + 1))
  done
fi

echo "checked $checked flags"
((checked > 20)) || fail "suspiciously few flags found ($checked)"
if ((failures > 0)); then
  echo "$failures failure(s)"
  exit 1
fi
echo "man pages ok"
