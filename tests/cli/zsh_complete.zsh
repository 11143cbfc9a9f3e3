#!/bin/zsh -f
# Prints the candidates zsh's completion system offers for a command line,
# using a generated completion file. Usage: zsh -f zsh_complete.zsh FILE LINE
# Completion only runs inside the line editor, so this drives an interactive
# zsh on a pseudo-terminal (zsh/zpty), binds TAB to a widget that runs the
# normal completer with compadd wrapped to record every match, and prints
# them between markers. FLIN_ZSH_AUTOLOAD=1 loads FILE the installed way
# (as _PROGRAM through $fpath) instead of sourcing it.
zmodload zsh/zpty || { print -u2 'zsh/zpty is missing'; exit 2 }
file=$1
line=$2
init=$(mktemp)
trap 'rm -f $init; zpty -d z 2>/dev/null' EXIT
cat >$init <<'INIT'
PROMPT='' RPROMPT=''
unsetopt zle_bracketed_paste 2>/dev/null
if [[ -n $FLIN_COMPLETION_FPATH ]]; then
  # Installed form: an autoloaded _flin found through $fpath by compinit.
  fpath=($FLIN_COMPLETION_FPATH $fpath)
  autoload -Uz compinit && compinit -u -D
else
  autoload -Uz compinit && compinit -u -D
  source "$FLIN_COMPLETION_FILE"
fi
typeset -ga __flin_caps
compadd() {
  # Calls that only compute matches into arrays (-O/-A/-D) pass through.
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
    builtin compadd "$@"
    return
  fi
  local -a __hits
  builtin compadd -O __hits "$@"
  __flin_caps+=("${__hits[@]}")
  builtin compadd "$@"
}
__flin_capture() {
  __flin_caps=()
  _main_complete
  print -r -- "<<CAPS>> ${__flin_caps[*]} <<END>>"
  exit
}
zle -C __flin_capture complete-word __flin_capture
bindkey '^I' __flin_capture
print "RE""ADY"
INIT
export FLIN_COMPLETION_FILE=$file
export FLIN_COMPLETION_FPATH=
if [[ -n $FLIN_ZSH_AUTOLOAD ]]; then
  # Install the file as _PROGRAM in a private fpath directory.
  fdir=$(mktemp -d)
  trap 'rm -rf $init $fdir; zpty -d z 2>/dev/null' EXIT
  prog=${${file:t}%.zsh}
  cp $file $fdir/_$prog
  FLIN_COMPLETION_FPATH=$fdir
fi
zpty z zsh -f -i
zpty -w z "source ${(q)init}"
zpty -r -m z out '*READY*' || { print -u2 'zsh did not start'; exit 2 }
zpty -w -n z "$line"$'\t'
zpty -r -m z out '*<<END>>*' || { print -u2 'no completion output'; exit 2 }
out=${out##*<<CAPS>> }
out=${out%% <<END>>*}
print -r -- $out
