;; SuperVM fungible token (see docs/CONTRACT_ABI.md, "Shipped contracts").
;;
;; Input: one selector byte, then the arguments.
;;   0x01 transfer(to: [u8; 20], amount: u128 LE)   moves the caller's tokens; reverts
;;        "insufficient balance" when the caller has fewer than `amount`.
;;   0x02 balance_of(who: [u8; 20]) -> u128 LE     (16 bytes of return data)
;;   0x03 mint(to: [u8; 20], amount: u128 LE)       only the owner; reverts "not owner",
;;        "overflow" when the recipient's balance would pass 2^128 - 1.
;; `init` (run by the deploy transaction) makes the deployer the owner.
;; Storage: "o" -> owner address (20 bytes); "b" || address -> balance (u128 LE, 16 bytes).
;; Events: transfer and mint emit one event, no topics, data = from(20) || to(20) || amount(16)
;; (from = 20 zero bytes for a mint).
;;
;; Memory layout: 0..64 input, 128 caller, 160 key A (21), 192 key B (21), 224 value A (16),
;; 240 value B (16), 256 owner (20), 320 event data (56), 4096.. constant strings.
(module
  (import "env" "input_len" (func $input_len (result i32)))
  (import "env" "input_copy" (func $input_copy (param i32)))
  (import "env" "caller" (func $caller (param i32)))
  (import "env" "storage_read" (func $sread (param i32 i32 i32 i32) (result i32)))
  (import "env" "storage_write" (func $swrite (param i32 i32 i32 i32)))
  (import "env" "set_return" (func $set_return (param i32 i32)))
  (import "env" "revert" (func $revert (param i32 i32)))
  (import "env" "emit_event" (func $emit (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 4096) "bad input")
  (data (i32.const 4112) "insufficient balance")
  (data (i32.const 4144) "not owner")
  (data (i32.const 4160) "overflow")
  (data (i32.const 4176) "o")

  (func $fail (param $msg i32) (param $len i32)
    (call $revert (local.get $msg) (local.get $len))
    unreachable)

  ;; key 'b' || address at $dst (21 bytes)
  (func $bkey (param $dst i32) (param $addr i32)
    (i32.store8 (local.get $dst) (i32.const 0x62))
    (memory.copy (i32.add (local.get $dst) (i32.const 1)) (local.get $addr) (i32.const 20)))

  ;; balance under the key at $key into $val (16 bytes; zero when absent)
  (func $load (param $key i32) (param $val i32)
    (i64.store (local.get $val) (i64.const 0))
    (i64.store offset=8 (local.get $val) (i64.const 0))
    (drop (call $sread (local.get $key) (i32.const 21) (local.get $val) (i32.const 16))))

  ;; adds the amount at input[21..37] to the balance under $key (value buffer $val);
  ;; reverts on overflow
  (func $credit (param $key i32) (param $val i32)
    (local $lo i64) (local $hi i64) (local $nlo i64) (local $nhi i64)
    (call $load (local.get $key) (local.get $val))
    (local.set $lo (i64.load (local.get $val)))
    (local.set $hi (i64.load offset=8 (local.get $val)))
    (local.set $nlo (i64.add (local.get $lo) (i64.load (i32.const 21))))
    (local.set $nhi
      (i64.add
        (i64.add (local.get $hi) (i64.load (i32.const 29)))
        (i64.extend_i32_u (i64.lt_u (local.get $nlo) (local.get $lo)))))
    ;; u128 addition overflowed iff the result is below the old balance
    (if (i32.or
          (i64.lt_u (local.get $nhi) (local.get $hi))
          (i32.and (i64.eq (local.get $nhi) (local.get $hi))
                   (i64.lt_u (local.get $nlo) (local.get $lo))))
      (then (call $fail (i32.const 4160) (i32.const 8))))
    (i64.store (local.get $val) (local.get $nlo))
    (i64.store offset=8 (local.get $val) (local.get $nhi))
    (call $swrite (local.get $key) (i32.const 21) (local.get $val) (i32.const 16)))

  (func $event (param $from i32)
    (memory.copy (i32.const 320) (local.get $from) (i32.const 20))
    (memory.copy (i32.const 340) (i32.const 1) (i32.const 36))
    (call $emit (i32.const 0) (i32.const 0) (i32.const 320) (i32.const 56)))

  (func $transfer
    (local $lo i64) (local $hi i64) (local $alo i64) (local $ahi i64)
    (if (i32.ne (call $input_len) (i32.const 37))
      (then (call $fail (i32.const 4096) (i32.const 9))))
    (call $caller (i32.const 128))
    (call $bkey (i32.const 160) (i32.const 128))
    (call $bkey (i32.const 192) (i32.const 1))
    (call $load (i32.const 160) (i32.const 224))
    (local.set $lo (i64.load (i32.const 224)))
    (local.set $hi (i64.load (i32.const 232)))
    (local.set $alo (i64.load (i32.const 21)))
    (local.set $ahi (i64.load (i32.const 29)))
    (if (i32.or
          (i64.lt_u (local.get $hi) (local.get $ahi))
          (i32.and (i64.eq (local.get $hi) (local.get $ahi))
                   (i64.lt_u (local.get $lo) (local.get $alo))))
      (then (call $fail (i32.const 4112) (i32.const 20))))
    (i64.store (i32.const 224) (i64.sub (local.get $lo) (local.get $alo)))
    (i64.store (i32.const 232)
      (i64.sub
        (i64.sub (local.get $hi) (local.get $ahi))
        (i64.extend_i32_u (i64.lt_u (local.get $lo) (local.get $alo)))))
    (call $swrite (i32.const 160) (i32.const 21) (i32.const 224) (i32.const 16))
    ;; credit after the debit is written, so a transfer to oneself reads the debited balance
    (call $credit (i32.const 192) (i32.const 240))
    (call $event (i32.const 128)))

  (func $balance_of
    (if (i32.ne (call $input_len) (i32.const 21))
      (then (call $fail (i32.const 4096) (i32.const 9))))
    (call $bkey (i32.const 160) (i32.const 1))
    (call $load (i32.const 160) (i32.const 224))
    (call $set_return (i32.const 224) (i32.const 16)))

  (func $mint
    (if (i32.ne (call $input_len) (i32.const 37))
      (then (call $fail (i32.const 4096) (i32.const 9))))
    (call $caller (i32.const 128))
    (if (i32.ne (call $sread (i32.const 4176) (i32.const 1) (i32.const 256) (i32.const 20))
                (i32.const 20))
      (then (call $fail (i32.const 4144) (i32.const 9))))
    (if (i32.eqz
          (i32.and
            (i32.and
              (i64.eq (i64.load (i32.const 128)) (i64.load (i32.const 256)))
              (i64.eq (i64.load (i32.const 136)) (i64.load (i32.const 264))))
            (i32.eq (i32.load (i32.const 144)) (i32.load (i32.const 272)))))
      (then (call $fail (i32.const 4144) (i32.const 9))))
    (call $bkey (i32.const 192) (i32.const 1))
    (call $credit (i32.const 192) (i32.const 240))
    ;; from = zero address (bytes 300..320 are never written)
    (call $event (i32.const 300)))

  (func (export "init")
    (call $caller (i32.const 128))
    (call $swrite (i32.const 4176) (i32.const 1) (i32.const 128) (i32.const 20)))

  (func (export "call")
    (local $n i32)
    (local.set $n (call $input_len))
    (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (i32.const 64)))
      (then (call $fail (i32.const 4096) (i32.const 9))))
    (call $input_copy (i32.const 0))
    (block $bad
      (block $mint
        (block $balance
          (block $transfer
            (br_table $bad $transfer $balance $mint $bad
              (i32.load8_u (i32.const 0))))
          (call $transfer)
          (return))
        (call $balance_of)
        (return))
      (call $mint)
      (return))
    (call $fail (i32.const 4096) (i32.const 9)))
)
