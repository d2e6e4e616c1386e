#!/usr/bin/env bash
# first.sh OUT : the Miller test on CUDA/OpenCL (at most 150 s), node bench new/old/mid, then the zk bench
OUT=$1; D=$(cd "$(dirname "$0")" && pwd); T0=$(date +%s)
zcat $D/zktest.gz > /tmp/zktest; zcat $D/zkb.gz > /tmp/zkb; chmod +x /tmp/zktest /tmp/zkb
(cd /tmp && ZK_TEST_MILLER_PAIRS=200 timeout 150 /tmp/zktest miller --nocapture --test-threads=1 > $OUT/zktest.log 2>&1; echo "zk miller test rc=$? $(( $(date +%s)-T0 )) s")
grep -E "match arkworks|SKIPPING|test result|panicked|FAILED" $OUT/zktest.log | head
SUPERVM_EXEC_PROFILE=1 $D/go.sh $OUT "new:c16 old:c16 mid:c16 new:c16 old:c16" 1 ${2:-170}
(cd /tmp && ZK_BENCH_DEPTH=8 ZK_BENCH_VERIFY=500,1500 ZK_BENCH_REPS=3 timeout ${3:-60} /tmp/zkb verify > $OUT/zk.log 2>&1; echo "zk bench rc=$?")
grep -E "miller-product|verify-payloads|verify-batch" $OUT/zk.log | sed -E 's/.*"case":"([^"]*)","backend":"([^"]*)".*"batch":([0-9]*),"items_per_sec":([0-9.]*),"median_ms":([0-9.]*).*/\1 \2 \3 \4\/s \5 ms/'
echo "total $(( $(date +%s)-T0 )) s"
