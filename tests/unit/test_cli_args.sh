#!/bin/sh
# test_cli_args: the command lines of every program (stepmark, stepmarkd, stepmark-worker,
# stepmark-engine) and every stepmark and stepmark-engine subcommand: --help (usage on stdout,
# exit 0), --version ("NAME VERSION", exit 0), an unknown or abbreviated option (named on
# stderr, exit 2), a missing required option or argument (exit 2), and a client command against
# an endpoint where no broker listens (fails within seconds, naming the endpoint). Needs no
# database and no broker.
# Usage: test_cli_args.sh STEPMARK STEPMARKD STEPMARK_WORKER STEPMARK_ENGINE VERSION
set -u
cli=$1
daemon=$2
worker=$3
engine=$4
version=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset STEPMARK_CONFIG STEPMARK_CLIENT_SECRET_KEY STEPMARK_CLIENT_SECRET_KEY_FILE
: >"$tmp/empty.yaml"
fail=0
n=0
bad() { echo "FAIL: $*"; fail=1; }

# run EXPECTED_STATUS CMD...: runs CMD with stdout in $out, stderr in $err
run() {
  want=$1
  shift
  n=$((n + 1))
  "$@" >"$tmp/out" 2>"$tmp/err"
  st=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  [ "$st" = "$want" ] || bad "$* exited $st, want $want (stderr: $(head -c 300 "$tmp/err"))"
}

# conventional PROGRAM_NAME CMD...: --help, --version and an unknown option of CMD
conventional() {
  name=$1
  shift
  run 0 "$@" --help
  case "$out" in *"usage: $name"*) ;; *) bad "$* --help: no usage of $name: $out";; esac
  run 0 "$@" --version
  case "$out" in "${name%% *} $version") ;; *) bad "$* --version printed \"$out\"";; esac
  run 2 "$@" --no-such-flag
  case "$err" in *"--no-such-flag"*) ;; *) bad "$* --no-such-flag not named: $err";; esac
}

conventional stepmark "$cli"
conventional stepmarkd "$daemon"
conventional stepmark-worker "$worker"
conventional stepmark-engine "$engine"
for c in status result wait cancel submit migrate keygen similarity; do
  conventional "stepmark $c" "$cli" "$c"
done
for c in "pg start" "pg stop" "pg url" "pg serve" "config check" "teacher add" "teacher rotate" \
         "teacher revoke" "teacher list" "assignment create" "assignment update" \
         "assignment show" "course create" "student link" "student rotate-key"; do
  # shellcheck disable=SC2086 # the subcommand's words
  conventional "stepmark $c" "$cli" $c
  group=${c%% *}
  conventional "stepmark $group" "$cli" "$group" # the group itself: its subcommands' list
done
for c in tokenize detokenize chat tokbench run logits info bench attnbench serve; do
  conventional "stepmark-engine $c" "$engine" "$c"
done

# `up`, the old name of `pg serve`, still works and says what it is now
run 0 "$cli" up --help
case "$err$out" in *"pg serve"*"database only"*"usage: stepmark pg serve"*) ;;
  *) bad "up --help: no notice of pg serve: $err";; esac

# misspelled and abbreviated options are errors, never ignored
run 2 "$cli" result 1 --jsn
case "$err" in *"'--jsn'"*) ;; *) bad "--jsn not named: $err";; esac
run 2 "$cli" result 1 --js
case "$err" in *"'--js'"*) ;; *) bad "the abbreviation --js was not refused: $err";; esac
run 2 "$cli" nosuchcommand
case "$err" in *nosuchcommand*) ;; *) bad "unknown command not named: $err";; esac
run 2 "$cli" teacher nosuchaction
case "$err" in *nosuchaction*) ;; *) bad "unknown teacher action not named: $err";; esac

# missing required options and arguments
run 2 "$cli"
run 2 "$cli" result
case "$err" in *SUBMISSION_ID*) ;; *) bad "result: the missing id is not named: $err";; esac
run 2 "$cli" result 1 2
run 2 "$cli" result notanumber
run 2 "$cli" submit "$tmp/empty.yaml" --assignment A
case "$err" in *--course*) ;; *) bad "submit: the missing --course is not named: $err";; esac
run 2 "$cli" pg start
case "$err" in *--data*) ;; *) bad "pg start: the missing --data is not named: $err";; esac
run 2 "$cli" teacher add --name Ann
case "$err" in *--course*) ;; *) bad "teacher add: the missing --course is not named: $err";; esac
run 2 "$cli" teacher rotate
run 2 "$cli" assignment show --course C
case "$err" in *--code*) ;; *) bad "assignment show: the missing --code is not named: $err";; esac
run 2 "$cli" result 1 --timeout-ms
case "$err" in *--timeout-ms*) ;; *) bad "a missing value is not named: $err";; esac
run 2 "$cli" result 1 --timeout-ms soon
run 2 "$daemon" --config
run 2 "$worker" --slots 0
run 2 "$engine"
run 2 "$engine" info
case "$err" in *--model*) ;; *) bad "engine info: the missing --model is not named: $err";; esac
run 2 "$engine" tokenize
run 2 "$engine" run --model "$tmp"
run 2 "$cli" course create --code C --key "$tmp/empty.yaml"
case "$err" in *--key-file*) ;; *) bad "--key is not refused with a pointer to --key-file";; esac

# options and arguments in any order, --opt=value, and -- before an argument
run 0 "$cli" config check --config=/nonexistent "$tmp/empty.yaml"
run 0 "$cli" config check -- "$tmp/empty.yaml"
run 0 "$cli" keygen --out="$tmp/k1"
[ -s "$tmp/k1.secret" ] || bad "keygen --out=BASE wrote no key"

# no broker at the endpoint: an error naming it, within seconds (default timeouts)
for ep in "tcp://127.0.0.1:1" "ipc://$tmp/no-broker --timeout-ms 500"; do
  t0=$(date +%s)
  # shellcheck disable=SC2086 # the endpoint and maybe a timeout
  run 1 "$cli" result 1 --config "$tmp/empty.yaml" --endpoint $ep
  ep=${ep%% *}
  t=$(($(date +%s) - t0))
  [ "$t" -le 15 ] || bad "result against $ep took ${t}s"
  case "$err" in *"no broker answers at $ep"*stepmarkd*) ;;
    *) bad "result against $ep: message \"$err\"";; esac
done
mkdir "$tmp/class" && echo "print(1)" >"$tmp/class/s1.py"
t0=$(date +%s)
run 1 timeout 60 "$cli" submit --config "$tmp/empty.yaml" --endpoint "ipc://$tmp/no-broker" \
  --timeout-ms 500 --course C --assignment A "$tmp/class"
t=$(($(date +%s) - t0))
[ "$t" -le 15 ] || bad "submit FOLDER against no broker took ${t}s"
case "$err" in *"no broker answers at ipc://$tmp/no-broker"*) ;;
  *) bad "submit FOLDER against no broker: message \"$err\"";; esac
# submit FOLDER: options of one FILE refused; a bad --map named with its line, before connecting
run 2 "$cli" submit --config "$tmp/empty.yaml" --course C --assignment A --student s "$tmp/class"
case "$err" in *--student*--map*) ;; *) bad "submit FOLDER --student: message \"$err\"";; esac
run 2 "$cli" submit --config "$tmp/empty.yaml" --course C --assignment A --idempotency-key k \
  "$tmp/class"
printf 'file,student_ref\ns1.py,\n' >"$tmp/bad.csv"
run 1 "$cli" submit --config "$tmp/empty.yaml" --endpoint "ipc://$tmp/no-broker" --course C \
  --assignment A --map "$tmp/bad.csv" "$tmp/class"
case "$err" in *"bad.csv:2: an empty student_ref"*) ;; *) bad "submit --map bad.csv: \"$err\"";; esac
printf 's1.py,ann\n"s1.py","bob"\n' >"$tmp/twice.csv"
run 1 "$cli" submit --config "$tmp/empty.yaml" --endpoint "ipc://$tmp/no-broker" --course C \
  --assignment A --map "$tmp/twice.csv" "$tmp/class"
case "$err" in *"twice.csv:2: s1.py is named twice"*) ;; *) bad "submit --map twice: \"$err\"";; esac
run 1 "$cli" submit --config "$tmp/empty.yaml" --course C --assignment A --map "$tmp/none.csv" \
  "$tmp/class"
case "$err" in *"cannot open the map"*none.csv*) ;; *) bad "submit --map none.csv: \"$err\"";; esac

[ $fail = 0 ] && echo "$n passed, 0 failed" || echo "some of $n failed"
exit $fail
