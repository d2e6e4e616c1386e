#!/usr/bin/env bash
# zk.sh OUT : the zk kernel tests (CUDA and OpenCL), then the Miller-product / batch-verify bench
OUT=$1; D=$(cd "$(dirname "$0")" && pwd)
zcat $D/zktest.gz > /tmp/zktest; zcat $D/zkb.gz > /tmp/zkb; chmod +x /tmp/zktest /tmp/zkb
cd /tmp
start=$(date +%s)
ZK_TEST_MILLER_PAIRS=200 /tmp/zktest miller --nocapture --test-threads=1 > $OUT/zktest.log 2>&1; echo "zk miller test rc=$? $(( $(date +%s)-start )) s"
grep -E "match arkworks|test result|panicked|FAILED" $OUT/zktest.log | head
start=$(date +%s)
ZK_BENCH_DEPTH=8 ZK_BENCH_VERIFY=64,500,1000,4000 ZK_BENCH_REPS=5 /tmp/zkb verify > $OUT/zk.log 2>&1; echo "zk bench rc=$? $(( $(date +%s)-start )) s"
grep -E "miller-product|verify-payloads|verify-batch" $OUT/zk.log | sed -E 's/.*"case":"([^"]*)","backend":"([^"]*)".*"batch":([0-9]*),"items_per_sec":([0-9.]*),"median_ms":([0-9.]*).*/\1 \2 \3 \4\/s \5 ms/'
