#!/usr/bin/env bash
# Runs every `func FuzzXxx` in the module for a short time ($1, default 5s).
# Seed corpora already run as ordinary tests in `make unit`.
set -euo pipefail
time=${1:-5s}
n=0
while IFS= read -r hit; do
  file=${hit%%:*}
  name=${hit##*func }
  dir=$(dirname "$file")
  echo "fuzz: $dir $name ($time)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$time" "$dir"
  n=$((n+1))
done < <(grep -rEo --include='*_test.go' --exclude-dir=node_modules '^func Fuzz[A-Za-z0-9_]+' . | sort)
echo "fuzz: $n targets run"
