#!/usr/bin/env bash
# scale.sh OUT [NODE_DEADLINE_S] [ZK_S]: G1 scaling + decompression + Miller tests on CUDA/OpenCL, node bench scl/dec alternating with proof debug split, zk bench verify
OUT=$1; D=$(cd "$(dirname "$0")" && pwd); T0=$(date +%s)
zcat $D/zktest.gz > /tmp/zktest; zcat $D/zkb.gz > /tmp/zkb; chmod +x /tmp/zktest /tmp/zkb
(cd /tmp && ZK_TEST_SCALE_POINTS=3000 ZK_TEST_DECODE_POINTS=300 ZK_TEST_MILLER_PAIRS=24 timeout 120 /tmp/zktest scaling decompression miller --nocapture --test-threads=1 > $OUT/zktest.log 2>&1; echo "zk tests rc=$? $(( $(date +%s)-T0 )) s")
grep -E "match arkworks|SKIPPING|test result|panicked|FAILED" $OUT/zktest.log | head -12
RUST_LOG=supervm::proofs=debug SUPERVM_EXEC_PROFILE=1 $D/go.sh $OUT "scl:c16 dec:c16 scl:c16 dec:c16 scl:c16 dec:c16 scl:c16 dec:c16" 1 ${2:-220}
(cd /tmp && ZK_BENCH_DEPTH=8 ZK_BENCH_VERIFY=500,1500 ZK_BENCH_REPS=3 timeout ${3:-100} /tmp/zkb verify > $OUT/zk.log 2>&1; echo "zk bench rc=$?")
grep -E "miller-product|verify-payloads|verify-batch|scale-a" $OUT/zk.log | sed -E 's/.*"case":"([^"]*)","backend":"([^"]*)".*"batch":([0-9]*),"items_per_sec":([0-9.]*),"median_ms":([0-9.]*).*/\1 \2 \3 \4\/s \5 ms/'
echo "total $(( $(date +%s)-T0 )) s"
