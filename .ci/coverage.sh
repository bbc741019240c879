#!/usr/bin/env bash
# Prints statement coverage per package from a cover profile and enforces the floor for authz.
set -euo pipefail
profile=$1
awk 'NR>1 { split($1,a,":"); f=a[1]; sub(/\/[^\/]*$/,"",f); st[f]+=$2; if ($3>0) cov[f]+=$2 }
     END { for (p in st) printf "coverage: %-60s %5.1f%%\n", p, 100*cov[p]/st[p] }' "$profile" | sort
authz=$(awk 'NR>1 && $1 ~ /\/authz\/[^\/]*:/ { st+=$2; if ($3>0) c+=$2 } END { if (st) printf "%.1f", 100*c/st; else print 0 }' "$profile")
echo "coverage: authz ${authz}% (floor 85%)"
awk -v a="$authz" 'BEGIN { exit !(a >= 85) }' || { echo "coverage: authz below 85%"; exit 1; }
