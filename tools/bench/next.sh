#!/usr/bin/env bash
# next.sh OUT [NODE_DEADLINE_S] [ZK_S]: the GPU decompression and Miller tests on CUDA and OpenCL (zktest.gz built with `decode.cl`), then node runs alternating `dec` (supervm-dec.gz, the build with GPU decompression) and `new` (59de79a) with the proof batches split (RUST_LOG=supervm::proofs=debug), then zk_privacy_bench verify
OUT=$1; D=$(cd "$(dirname "$0")" && pwd); T0=$(date +%s)
zcat $D/zktest.gz > /tmp/zktest; zcat $D/zkb.gz > /tmp/zkb; chmod +x /tmp/zktest /tmp/zkb
(cd /tmp && ZK_TEST_DECODE_POINTS=2000 ZK_TEST_MILLER_PAIRS=60 timeout 150 /tmp/zktest decompression miller --nocapture --test-threads=1 > $OUT/zktest.log 2>&1; echo "zk tests rc=$? $(( $(date +%s)-T0 )) s")
grep -E "match arkworks|SKIPPING|test result|panicked|FAILED" $OUT/zktest.log | head
RUST_LOG=supervm::proofs=debug SUPERVM_EXEC_PROFILE=1 $D/go.sh $OUT "dec:c16 new:c16 dec:c16 new:c16 dec:c16 new:c16 dec:c16 new:c16" 1 ${2:-220}
(cd /tmp && ZK_BENCH_DEPTH=8 ZK_BENCH_VERIFY=500,1500 ZK_BENCH_REPS=3 timeout ${3:-110} /tmp/zkb verify > $OUT/zk.log 2>&1; echo "zk bench rc=$?")
grep -E "miller-product|verify-payloads|verify-batch" $OUT/zk.log | sed -E 's/.*"case":"([^"]*)","backend":"([^"]*)".*"batch":([0-9]*),"items_per_sec":([0-9.]*),"median_ms":([0-9.]*).*/\1 \2 \3 \4\/s \5 ms/'
echo "total $(( $(date +%s)-T0 )) s"
