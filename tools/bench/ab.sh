#!/usr/bin/env bash
# ab.sh OUT ROUNDS : execution suite, old (exec-old.gz) vs new (exec.gz), alternating
OUT=$1; ROUNDS=$2; D=$(cd "$(dirname "$0")" && pwd)
zcat $D/exec-old.gz > /tmp/exec-old; zcat $D/exec.gz > /tmp/exec-new; chmod +x /tmp/exec-old /tmp/exec-new
cd /tmp
for r in $(seq 1 $ROUNDS); do for b in old new; do
  echo "=== round $r $b graph $(date +%T)" >> $OUT/ab.log
  SUPERVM_BENCH_THREADS=8,16 SUPERVM_BENCH_REPEATS=5 SUPERVM_BENCH_FORCE_DECLARED=1 SUPERVM_BENCH_PHASES=1 SUPERVM_EXEC_PROFILE=1 SUPERVM_BENCH_WORKLOADS=token-declared,native SUPERVM_BENCH_ACCOUNTS=10000 ./exec-$b >> $OUT/ab.log 2>&1
  echo "=== round $r $b adaptive $(date +%T)" >> $OUT/ab.log
  SUPERVM_BENCH_REPEATS=5 SUPERVM_BENCH_WORKLOADS=token-declared,native SUPERVM_BENCH_ACCOUNTS=2,100,10000 ./exec-$b >> $OUT/ab.log 2>&1
done; done
grep -E "^=== |x$" $OUT/ab.log | grep -E "=== | 16 " 
