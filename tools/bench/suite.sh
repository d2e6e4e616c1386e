#!/usr/bin/env bash
# suite.sh OUT : the execution suite on the host (adaptive, forced graph, forced Block-STM)
OUT=$1; D=$(cd "$(dirname "$0")" && pwd)
zcat $D/exec.gz > /tmp/exec && chmod +x /tmp/exec
cd /tmp
echo "== adaptive $(date +%T)" >> $OUT/exec.log
SUPERVM_BENCH_REPEATS=5 SUPERVM_BENCH_CEILING=1 SUPERVM_BENCH_WORKLOADS=token-declared,token,native ./exec >> $OUT/exec.log 2>&1
echo "== graph forced $(date +%T)" >> $OUT/exec.log
SUPERVM_BENCH_THREADS=8,16 SUPERVM_BENCH_REPEATS=5 SUPERVM_BENCH_FORCE_DECLARED=1 SUPERVM_BENCH_PHASES=1 SUPERVM_EXEC_PROFILE=1 SUPERVM_BENCH_WORKLOADS=token-declared,native SUPERVM_BENCH_ACCOUNTS=100,10000 ./exec >> $OUT/exec.log 2>&1
echo "== bstm forced $(date +%T)" >> $OUT/exec.log
SUPERVM_BENCH_REPEATS=5 SUPERVM_BENCH_FORCE_PARALLEL=1 SUPERVM_BENCH_WORKLOADS=token SUPERVM_BENCH_ACCOUNTS=10000 ./exec >> $OUT/exec.log 2>&1
echo "== done $(date +%T)" >> $OUT/exec.log
grep -E "x$|x\)$|TPS" $OUT/exec.log | tail -60
