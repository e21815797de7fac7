#!/usr/bin/env bash
# The README's configuration table is what `switchyard config --reference` prints (the one
# declarative config table, core/sy_config.c): every key, environment variable, default and
# description, in order. On a difference it shows the diff and the command that regenerates
# the table.
#   SY_BIN=build/bin tests/docs/readme-config.sh        (SY_README: another README to check)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sy=${SY_BIN:?SY_BIN is not set (the directory of the binaries under test)}/switchyard
readme=${SY_README:-$root/README.md}
# the table does not depend on the environment, but a SWITCHYARD_* variable that is not a key
# (another test's) is refused before anything is printed
for v in $(compgen -e | grep '^SWITCHYARD_'); do unset "$v"; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# from the table's header row to the last row
awk '/^\| key \| environment variable \| default \| description \|$/ { t = 1 }
     t && !/^\|/ { exit }
     t { print }' "$readme" >"$tmp/readme"
"$sy" config --reference >"$tmp/reference" || { echo "FAIL switchyard config --reference failed"; exit 1; }
if [ ! -s "$tmp/readme" ]; then
  echo "FAIL no configuration table in $readme"
  exit 1
fi
if diff -u --label "README.md (configuration table)" --label "switchyard config --reference" \
  "$tmp/readme" "$tmp/reference"; then
  echo "PASS the README's configuration table is switchyard config --reference ($(($(wc -l <"$tmp/reference") - 2)) keys)"
else
  echo "FAIL the README's configuration table differs; regenerate it from: build/bin/switchyard config --reference"
  exit 1
fi
