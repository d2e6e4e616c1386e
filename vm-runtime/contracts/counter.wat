;; SuperVM counter map: a contract that touches many keys, for conflict tests
;; (see docs/CONTRACT_ABI.md, "Shipped contracts").
;;
;; Input: one selector byte, then the key (1..=32 bytes).
;;   0x01 increment(key)      counter[key] += 1 (u64 LE, wrapping), returns the new value
;;   0x02 get(key) -> u64 LE  (8 bytes of return data; 0 when never incremented)
;; Storage: "k" || key -> u64 LE.
;;
;; Memory layout: 0..33 input, 64 storage key ("k" || key), 128 value (8), 4096.. strings.
(module
  (import "env" "input_len" (func $input_len (result i32)))
  (import "env" "input_copy" (func $input_copy (param i32)))
  (import "env" "storage_read" (func $sread (param i32 i32 i32 i32) (result i32)))
  (import "env" "storage_write" (func $swrite (param i32 i32 i32 i32)))
  (import "env" "set_return" (func $set_return (param i32 i32)))
  (import "env" "revert" (func $revert (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 4096) "bad input")

  (func (export "call")
    (local $n i32)
    (local.set $n (call $input_len))
    (if (i32.or (i32.lt_u (local.get $n) (i32.const 2)) (i32.gt_u (local.get $n) (i32.const 33)))
      (then (call $revert (i32.const 4096) (i32.const 9)) (unreachable)))
    (call $input_copy (i32.const 0))
    ;; key = "k" || input[1..n]  (length n)
    (i32.store8 (i32.const 64) (i32.const 0x6b))
    (memory.copy (i32.const 65) (i32.const 1) (i32.sub (local.get $n) (i32.const 1)))
    (i64.store (i32.const 128) (i64.const 0))
    (drop (call $sread (i32.const 64) (local.get $n) (i32.const 128) (i32.const 8)))
    (block $bad
      (block $get
        (block $inc
          (br_table $bad $inc $get $bad (i32.load8_u (i32.const 0))))
        (i64.store (i32.const 128) (i64.add (i64.load (i32.const 128)) (i64.const 1)))
        (call $swrite (i32.const 64) (local.get $n) (i32.const 128) (i32.const 8))
        (call $set_return (i32.const 128) (i32.const 8))
        (return))
      (call $set_return (i32.const 128) (i32.const 8))
      (return))
    (call $revert (i32.const 4096) (i32.const 9))
    (unreachable))
)
