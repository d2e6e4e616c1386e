/* Keccak-256 (the pre-NIST padding Ethereum uses) of one block of at most 135 bytes. */

SIG_CONST sig_u64 KECCAK_RC[24] = {
    0x0000000000000001UL, 0x0000000000008082UL, 0x800000000000808aUL, 0x8000000080008000UL,
    0x000000000000808bUL, 0x0000000080000001UL, 0x8000000080008081UL, 0x8000000000008009UL,
    0x000000000000008aUL, 0x0000000000000088UL, 0x0000000080008009UL, 0x000000008000000aUL,
    0x000000008000808bUL, 0x800000000000008bUL, 0x8000000000008089UL, 0x8000000000008003UL,
    0x8000000000008002UL, 0x8000000000000080UL, 0x000000000000800aUL, 0x800000008000000aUL,
    0x8000000080008081UL, 0x8000000000008080UL, 0x0000000080000001UL, 0x8000000080008008UL};

#define KECCAK_ROTL(x, n) ((n) == 0 ? (x) : (((x) << (n)) | ((x) >> (64 - (n)))))

SIG_NOINLINE void keccak_f1600(sig_u64 *a) {
    /* rho offsets and pi destinations, in the order of the lane walk starting at lane 1 */
    const int rotc[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14,
                          27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};
    const int piln[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4,
                          15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};
    for (int round = 0; round < 24; round++) {
        sig_u64 c[5];
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) {
            sig_u64 d = c[(x + 4) % 5] ^ KECCAK_ROTL(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) a[y + x] ^= d;
        }
        sig_u64 t = a[1];
        for (int i = 0; i < 24; i++) {
            int j = piln[i];
            sig_u64 u = a[j];
            a[j] = KECCAK_ROTL(t, rotc[i]);
            t = u;
        }
        for (int y = 0; y < 25; y += 5) {
            sig_u64 b0 = a[y], b1 = a[y + 1], b2 = a[y + 2], b3 = a[y + 3], b4 = a[y + 4];
            a[y] = b0 ^ (~b1 & b2);
            a[y + 1] = b1 ^ (~b2 & b3);
            a[y + 2] = b2 ^ (~b3 & b4);
            a[y + 3] = b3 ^ (~b4 & b0);
            a[y + 4] = b4 ^ (~b0 & b1);
        }
        a[0] ^= KECCAK_RC[round];
    }
}

/* out = Keccak-256(in[0..len)), len <= 135. */
SIG_FN void keccak256_small(sig_u8 *out, const sig_u8 *in, int len) {
    sig_u64 a[25];
    for (int i = 0; i < 25; i++) a[i] = 0;
    sig_u8 block[136];
    for (int i = 0; i < 136; i++) block[i] = 0;
    for (int i = 0; i < len; i++) block[i] = in[i];
    block[len] ^= 0x01;
    block[135] ^= 0x80;
    for (int i = 0; i < 17; i++) {
        sig_u64 w = 0;
        for (int q = 7; q >= 0; q--) w = (w << 8) | block[8 * i + q];
        a[i] ^= w;
    }
    keccak_f1600(a);
    for (int i = 0; i < 4; i++)
        for (int q = 0; q < 8; q++) out[8 * i + q] = (sig_u8)(a[i] >> (8 * q));
}
