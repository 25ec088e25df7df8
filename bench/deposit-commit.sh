#!/bin/sh
# Commit of a deposit with its audit row, 8 concurrent clients, on SQLite
# and PostgreSQL: "once" (one transaction under the audit lock, with the
# exactly-once duplicate check) against "two-steps" (the deposit row, then
# the audit row in its own transaction: what uploads did before issue 12).
# Interleaved rounds; prints each round's ns/op and the median ratio.
set -eu
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
out=$(mktemp)
go test -c -o "$out.test" ./store
for i in $(seq "$rounds"); do
	"$out.test" -test.run '^$' -test.bench BenchmarkDepositCommit -test.benchtime "${BENCHTIME:-2s}" | grep ^Benchmark
done | tee "$out"
for db in sqlite postgres; do
	awk -v db="$db" '
		$1 ~ "/"db"/once" { once[++n] = $3 }
		$1 ~ "/"db"/two-steps" { two[++m] = $3 }
		END {
			for (i = 1; i <= n; i++) r[i] = once[i] / two[i]
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
			printf "%s: median ratio once/two-steps over %d rounds = %.2f\n", db, n, (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
		}' "$out"
done
rm -f "$out" "$out.test"
