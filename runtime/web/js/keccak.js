// keccak.js: Keccak-256 (Ethereum's, with the original 0x01 padding, not SHA3's 0x06), for the
// digest a contributor signs: keccak256(datanet || 0x00 || text) (registry/registry.h). The page
// computes it itself so that a wallet signs what the page shows, not what a server says.
//
// Lanes are BigInts: slow beside a typed-array version, but a record is a few hundred bytes, and
// this is short enough to check by eye against the Keccak reference (FIPS 202, section 3.2).

const MASK = (1n << 64n) - 1n;
const RC = [
  0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n,
  0x000000000000808bn, 0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n,
  0x000000000000008an, 0x0000000000000088n, 0x0000000080008009n, 0x000000008000000an,
  0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n, 0x8000000000008003n,
  0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
  0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
];
// Rotation offsets r[x][y], as a flat table indexed x + 5y.
const ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14];

function rotl(v, n) {
  const b = BigInt(n);
  return n === 0 ? v : ((v << b) | (v >> (64n - b))) & MASK;
}

function permute(A) {
  const C = new Array(5), B = new Array(25);
  for (let round = 0; round < 24; round++) {
    for (let x = 0; x < 5; x++) C[x] = A[x] ^ A[x + 5] ^ A[x + 10] ^ A[x + 15] ^ A[x + 20];
    for (let x = 0; x < 5; x++) {
      const D = C[(x + 4) % 5] ^ rotl(C[(x + 1) % 5], 1);
      for (let y = 0; y < 25; y += 5) A[x + y] ^= D;
    }
    for (let x = 0; x < 5; x++)
      for (let y = 0; y < 5; y++) B[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(A[x + 5 * y], ROT[x + 5 * y]);
    for (let x = 0; x < 5; x++)
      for (let y = 0; y < 25; y += 5) A[x + y] = B[x + y] ^ (~B[(x + 1) % 5 + y] & MASK & B[(x + 2) % 5 + y]);
    A[0] ^= RC[round];
  }
}

// keccak256(bytes: Uint8Array) -> Uint8Array(32)
export function keccak256(bytes) {
  const rate = 136;
  const padded = new Uint8Array(Math.floor(bytes.length / rate) * rate + rate);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const A = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let lane = 0n;
      for (let k = 7; k >= 0; k--) lane = (lane << 8n) | BigInt(padded[off + 8 * i + k]);
      A[i] ^= lane;
    }
    permute(A);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    let lane = A[i];
    for (let k = 0; k < 8; k++) { out[8 * i + k] = Number(lane & 0xffn); lane >>= 8n; }
  }
  return out;
}

export function hex(bytes) {
  return '0x' + Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
}

// What a contributor signs for a record of a datanet (EIP-191 personal_sign over these 32 bytes).
export function contributionDigest(datanet, text) {
  const enc = new TextEncoder();
  const name = enc.encode(datanet), body = enc.encode(text);
  const msg = new Uint8Array(name.length + 1 + body.length);
  msg.set(name);
  msg.set(body, name.length + 1);
  return keccak256(msg);
}
