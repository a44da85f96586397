// ESP (RFC 4303) in transport mode with AES-GCM (RFC 4106) over packet batches, in place.
//
// Owns the SA table (several live keys at once for rotation), the peer -> outbound SA map, the
// anti-replay windows and the ESP wire format. The cipher is the existing GCM core (gcm.ts):
// an SA holds the address of a GCM key context, and a batch is handed to gcm_seal_batch /
// gcm_open_batch grouped by key, so no AES or GHASH code lives here.
//
// seal, per descriptor with VERDICT_SEND (others are left alone); in: DESC_PTR/LEN = the UDP
// datagram to protect (UDP + VXLAN + inner frame; with ESP_F_PUSH_UDP the VXLAN packet, and seal
// pushes the UDP header), DESC_ARG = peer index (mapped by esp_bind) or, with ESP_F_BY_SA, an SA
// index. Out: SPI | seq | IV pushed in the HEADROOM (DESC_PTR -= 16),
// pad 1,2,3.., pad length, next header 17 and the ICV appended in the TAILROOM; or VERDICT_DROP
// with DROP_NO_SA / DROP_SEQ_EXHAUSTED. The IV is a 64-bit counter shared by every SA using the
// same key and salt, so a nonce never repeats under one key.
// open, per descriptor; in: DESC_PTR/LEN = the ESP packet (after the IPv4 header, or the payload of
// a UDP-encapsulated datagram on port 4500). SPI -> inbound SA (DROP_BAD_SPI), length and
// alignment (DROP_TRUNCATED, DROP_MALFORMED), replay pre-check (DROP_REPLAY) before any crypto;
// then the GCM open (DROP_AUTH; the core zeroes the text), then the window is re-checked and
// updated (a duplicate inside the same batch is caught here), the trailer checked
// (DROP_BAD_PADDING, next header not 17: DROP_MALFORMED). A pass leaves VERDICT_LOCAL, DESC_ARG =
// SA index and DESC_PTR/LEN = the UDP datagram (with ESP_F_PULL_UDP: its payload, the VXLAN
// header). Every dropped packet whose text was decrypted is zeroed, so no plaintext stays behind.
//
// The context is single-writer (sequence numbers, windows, counters), like a datapath context: the
// thread that runs its batches is the one that changes its SAs, between batches.
import {
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  DROP_AUTH,
  DROP_BAD_PADDING,
  DROP_BAD_SPI,
  DROP_MALFORMED,
  DROP_NO_SA,
  DROP_REPLAY,
  DROP_SEQ_EXHAUSTED,
  DROP_TRUNCATED,
  ESP_CHUNK,
  ESP_CNT_DROPS,
  ESP_CNT_OPENED,
  ESP_CNT_OPENED_BYTES,
  ESP_CNT_SEALED,
  ESP_CNT_SEALED_BYTES,
  ESP_CNT_SIZE,
  ESP_F_BY_SA,
  ESP_F_PULL_UDP,
  ESP_F_PUSH_UDP,
  ESP_F_STAGE,
  ESP_PUSH,
  ESP_REPLAY_WINDOW,
  ESP_SA_F_ESN,
  ESP_SA_F_OUT,
  ESP_SA_F_USED,
  ESP_SA_HDR,
  ESP_SA_SIZE,
  ESP_REC_AAD,
  ESP_REC_NONCE,
  ESP_REC_SEQ,
  ESP_REC_SIZE,
  ESPX_CNT,
  ESPX_GCMD,
  ESPX_HASH,
  ESPX_HASH_MASK,
  ESPX_HASH_SHIFT,
  ESPX_IDX,
  ESPX_KEYS,
  ESPX_MAX_PEERS,
  ESPX_MAX_SAS,
  ESPX_MEM_BYTES,
  ESPX_NONCES,
  ESPX_SAS,
  ESPX_SCRATCH,
  ESPX_STAGE,
  ESPX_TXMAP,
  GCM_OK,
  GCM_SCRATCH_SIZE,
  GCMD_AAD,
  GCMD_AAD_LEN,
  GCMD_NONCE,
  GCMD_SIZE,
  GCMD_STATUS,
  GCMD_TAG,
  GCMD_TAG_LEN,
  GCMD_TEXT,
  GCMD_TEXT_LEN,
  IPPROTO_UDP,
  SA_AUTH_FAIL,
  SA_BYTES,
  SA_FLAGS,
  SA_GCM,
  SA_ICV,
  SA_IVCTR,
  SA_PACKETS,
  SA_REPLAY,
  SA_SALT,
  SA_SEQ,
  SA_SPI,
  SA_WINDOW,
  ST_INVALID_PEER,
  ST_INVALID_SA,
  ST_OK,
  ST_SA_TABLE_FULL,
  ST_SPI_EXISTS,
  UDP_HLEN,
  VERDICT_DROP,
  VERDICT_LOCAL,
  VERDICT_SEND,
  VXLAN_PORT,
} from './constants';
import { gcm_open_batch, gcm_seal_batch } from './gcm';
import { vx_alloc } from './mem';

const NONE: u32 = 0xffffffff;

// ---- setup and the SA table ---------------------------------------------------------------------

/** Carves the tables for the config the host wrote (ESPX_MAX_SAS, ESPX_MAX_PEERS). Returns bytes, 0 if invalid. */
export function esp_setup(ectx: usize): u32 {
  const maxSas = load<u32>(ectx + ESPX_MAX_SAS);
  const maxPeers = load<u32>(ectx + ESPX_MAX_PEERS);
  if (maxSas == 0 || maxSas > 65536 || maxPeers > 65536) return 0;
  let slots: u32 = 16;
  while (slots < maxSas * 2) slots <<= 1;
  let bytes: usize = 0;
  bytes += region(ectx, ESPX_SAS, <usize>maxSas * ESP_SA_SIZE);
  bytes += region(ectx, ESPX_HASH, <usize>slots << 2);
  bytes += region(ectx, ESPX_TXMAP, (<usize>maxPeers << 2) + 4);
  bytes += region(ectx, ESPX_CNT, ESP_CNT_SIZE);
  bytes += region(ectx, ESPX_GCMD, <usize>ESP_CHUNK * GCMD_SIZE);
  bytes += region(ectx, ESPX_NONCES, <usize>ESP_CHUNK * ESP_REC_SIZE);
  bytes += region(ectx, ESPX_KEYS, <usize>ESP_CHUNK << 2);
  bytes += region(ectx, ESPX_IDX, <usize>ESP_CHUNK << 2);
  bytes += region(ectx, ESPX_SCRATCH, GCM_SCRATCH_SIZE);
  bytes += region(ectx, ESPX_STAGE, ESP_SA_SIZE);
  store<u32>(ectx + ESPX_HASH_MASK, slots - 1);
  store<u32>(ectx + ESPX_HASH_SHIFT, 32 - ctz<u32>(slots));
  memory.fill(<usize>load<u32>(ectx + ESPX_TXMAP), 0xff, <usize>maxPeers << 2);
  store<u32>(ectx + ESPX_MEM_BYTES, <u32>bytes);
  return <u32>bytes;
}

function region(ectx: usize, field: usize, size: usize): usize {
  store<u32>(ectx + field, <u32>vx_alloc(size));
  return size;
}

@inline function saAddr(ectx: usize, i: u32): usize {
  return <usize>load<u32>(ectx + ESPX_SAS) + <usize>i * ESP_SA_SIZE;
}

@inline function hashSlot(ectx: usize, spi: u32): u32 {
  return (spi * 0x9e3779b1) >>> load<u32>(ectx + ESPX_HASH_SHIFT);
}

/** The inbound SA for `spi` (0 when none). */
function findIn(ectx: usize, spi: u32): usize {
  const hash = <usize>load<u32>(ectx + ESPX_HASH);
  const mask = load<u32>(ectx + ESPX_HASH_MASK);
  let s = hashSlot(ectx, spi);
  while (true) {
    const v = load<u32>(hash + (<usize>s << 2));
    if (v == 0) return 0;
    const sa = saAddr(ectx, v - 1);
    if (load<u32>(sa + SA_SPI) == spi) return sa;
    s = (s + 1) & mask;
  }
  return 0;
}

/**
 * Adds the SA the host staged at ESPX_STAGE (ESP_SA_HDR bytes: SPI, flags, ICV, GCM context, salt,
 * IV counter, initial sequence). Returns its index, or -ST_SPI_EXISTS (inbound SPI taken) /
 * -ST_SA_TABLE_FULL.
 */
export function esp_sa_add(ectx: usize): i32 {
  const rec = <usize>load<u32>(ectx + ESPX_STAGE);
  const flags = load<u32>(rec + SA_FLAGS);
  const spi = load<u32>(rec + SA_SPI);
  const inbound = (flags & ESP_SA_F_OUT) == 0;
  if (inbound && findIn(ectx, spi) != 0) return -ST_SPI_EXISTS;
  const max = load<u32>(ectx + ESPX_MAX_SAS);
  let idx: u32 = 0;
  while (idx < max && (load<u32>(saAddr(ectx, idx) + SA_FLAGS) & ESP_SA_F_USED) != 0) idx++;
  if (idx == max) return -ST_SA_TABLE_FULL;
  const sa = saAddr(ectx, idx);
  memory.fill(sa, 0, ESP_SA_SIZE);
  memory.copy(sa, rec, ESP_SA_HDR);
  memory.fill(rec, 0, ESP_SA_HDR);
  store<u32>(sa + SA_FLAGS, flags | ESP_SA_F_USED);
  if (inbound) {
    const hash = <usize>load<u32>(ectx + ESPX_HASH);
    const mask = load<u32>(ectx + ESPX_HASH_MASK);
    let s = hashSlot(ectx, spi);
    while (load<u32>(hash + (<usize>s << 2)) != 0) s = (s + 1) & mask;
    store<u32>(hash + (<usize>s << 2), idx + 1);
  }
  return <i32>idx;
}

/** Removes SA `idx` (its slot is zeroed, peers bound to it are unbound). ST_OK or ST_INVALID_SA. */
export function esp_sa_remove(ectx: usize, idx: u32): u32 {
  if (idx >= load<u32>(ectx + ESPX_MAX_SAS)) return ST_INVALID_SA;
  const sa = saAddr(ectx, idx);
  const flags = load<u32>(sa + SA_FLAGS);
  if ((flags & ESP_SA_F_USED) == 0) return ST_INVALID_SA;
  if ((flags & ESP_SA_F_OUT) == 0) hashDelete(ectx, idx);
  const txmap = <usize>load<u32>(ectx + ESPX_TXMAP);
  const peers = load<u32>(ectx + ESPX_MAX_PEERS);
  for (let p: u32 = 0; p < peers; p++) {
    if (load<u32>(txmap + (<usize>p << 2)) == idx) store<u32>(txmap + (<usize>p << 2), NONE);
  }
  memory.fill(sa, 0, ESP_SA_SIZE);
  return ST_OK;
}

/** Linear-probing delete with backward shift (no tombstones): later entries of the run move up. */
function hashDelete(ectx: usize, idx: u32): void {
  const hash = <usize>load<u32>(ectx + ESPX_HASH);
  const mask = load<u32>(ectx + ESPX_HASH_MASK);
  let s = hashSlot(ectx, load<u32>(saAddr(ectx, idx) + SA_SPI));
  while (load<u32>(hash + (<usize>s << 2)) != idx + 1) s = (s + 1) & mask;
  let hole = s;
  let j = (s + 1) & mask;
  while (true) {
    const v = load<u32>(hash + (<usize>j << 2));
    if (v == 0) break;
    const home = hashSlot(ectx, load<u32>(saAddr(ectx, v - 1) + SA_SPI));
    // Move v into the hole unless its home lies cyclically in (hole, j].
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      store<u32>(hash + (<usize>hole << 2), v);
      hole = j;
    }
    j = (j + 1) & mask;
  }
  store<u32>(hash + (<usize>hole << 2), 0);
}

/** Sends traffic for `peer` with outbound SA `sa` (NONE unbinds). ST_OK, ST_INVALID_PEER or ST_INVALID_SA. */
export function esp_bind(ectx: usize, peer: u32, sa: u32): u32 {
  if (peer >= load<u32>(ectx + ESPX_MAX_PEERS)) return ST_INVALID_PEER;
  if (sa != NONE && outSa(ectx, sa) == 0) return ST_INVALID_SA;
  store<u32>(<usize>load<u32>(ectx + ESPX_TXMAP) + (<usize>peer << 2), sa);
  return ST_OK;
}

/** The live outbound SA with index `i` (0 when none). */
function outSa(ectx: usize, i: u32): usize {
  if (i >= load<u32>(ectx + ESPX_MAX_SAS)) return 0;
  const sa = saAddr(ectx, i);
  const f = load<u32>(sa + SA_FLAGS);
  return (f & (ESP_SA_F_USED | ESP_SA_F_OUT)) == (ESP_SA_F_USED | ESP_SA_F_OUT) ? sa : 0;
}

// ---- batches ------------------------------------------------------------------------------------

@inline function drop(ectx: usize, d: usize, reason: u32): void {
  store<u32>(d + DESC_VERDICT, VERDICT_DROP);
  store<u32>(d + DESC_ARG, reason);
  const c = <usize>load<u32>(ectx + ESPX_CNT) + ESP_CNT_DROPS + (<usize>reason << 3);
  store<u64>(c, load<u64>(c) + 1);
}

@inline function add64(p: usize, n: u64): void {
  store<u64>(p, load<u64>(p) + n);
}

/** Seals every VERDICT_SEND descriptor (see the header). Returns how many were sealed. */
export function esp_seal_batch(ectx: usize, descs: usize, n: u32, flags: u32): u32 {
  let sealed: u32 = 0;
  for (let base: u32 = 0; base < n; base += ESP_CHUNK) {
    const m = n - base < <u32>ESP_CHUNK ? n - base : <u32>ESP_CHUNK;
    sealed += sealChunk(ectx, descs + <usize>base * DESC_SIZE, m, flags);
  }
  return sealed;
}

/** Opens every descriptor (see the header). Returns how many passed. */
export function esp_open_batch(ectx: usize, descs: usize, n: u32, flags: u32): u32 {
  let opened: u32 = 0;
  for (let base: u32 = 0; base < n; base += ESP_CHUNK) {
    const m = n - base < <u32>ESP_CHUNK ? n - base : <u32>ESP_CHUNK;
    opened += openChunk(ectx, descs + <usize>base * DESC_SIZE, m, flags);
  }
  return opened;
}

/**
 * Stages GCM descriptor `k` (and its key and descriptor index) for the grouped GCM call; its record
 * keeps the nonce, the full sequence number `seq` and, with ESN, the 12-byte AAD.
 */
function stage(ectx: usize, k: u32, i: u32, sa: usize, esp: usize, textLen: u32, seq: u64): void {
  const rec = <usize>load<u32>(ectx + ESPX_NONCES) + <usize>k * ESP_REC_SIZE;
  store<u32>(rec + ESP_REC_NONCE, load<u32>(sa + SA_SALT));
  store<u64>(rec + ESP_REC_NONCE + 4, load<u64>(esp + 8));
  store<u64>(rec + ESP_REC_SEQ, seq);
  const text = esp + ESP_PUSH;
  const g = <usize>load<u32>(ectx + ESPX_GCMD) + <usize>k * GCMD_SIZE;
  store<u32>(g + GCMD_TEXT, <u32>text);
  store<u32>(g + GCMD_TEXT_LEN, textLen);
  if ((load<u32>(sa + SA_FLAGS) & ESP_SA_F_ESN) != 0) {
    const aad = rec + ESP_REC_AAD;
    store<u32>(aad, load<u32>(esp));
    store<u32>(aad + 4, bswap<u32>(<u32>(seq >> 32)));
    store<u32>(aad + 8, bswap<u32>(<u32>seq));
    store<u32>(g + GCMD_AAD, <u32>aad);
    store<u32>(g + GCMD_AAD_LEN, 12);
  } else {
    store<u32>(g + GCMD_AAD, <u32>esp);
    store<u32>(g + GCMD_AAD_LEN, 8);
  }
  store<u32>(g + GCMD_NONCE, <u32>(rec + ESP_REC_NONCE));
  store<u32>(g + GCMD_TAG, <u32>(text + textLen));
  store<u32>(g + GCMD_TAG_LEN, load<u32>(sa + SA_ICV));
  store<u32>(g + GCMD_STATUS, GCM_OK);
  store<u32>(<usize>load<u32>(ectx + ESPX_KEYS) + (<usize>k << 2), load<u32>(sa + SA_GCM));
  store<u32>(<usize>load<u32>(ectx + ESPX_IDX) + (<usize>k << 2), i);
}

function sealChunk(ectx: usize, descs: usize, m: u32, flags: u32): u32 {
  const cnt = <usize>load<u32>(ectx + ESPX_CNT);
  const txmap = <usize>load<u32>(ectx + ESPX_TXMAP);
  const maxPeers = load<u32>(ectx + ESPX_MAX_PEERS);
  let count: u32 = 0;
  for (let i: u32 = 0; i < m; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    if (load<u32>(d + DESC_VERDICT) != VERDICT_SEND) continue;
    const arg = load<u32>(d + DESC_ARG);
    let sa: usize = 0;
    if ((flags & ESP_F_BY_SA) != 0) sa = outSa(ectx, arg);
    else if (arg < maxPeers) {
      const s = load<u32>(txmap + (<usize>arg << 2));
      if (s != NONE) sa = outSa(ectx, s);
    }
    if (sa == 0) {
      drop(ectx, d, DROP_NO_SA);
      continue;
    }
    let p = <usize>load<u32>(d + DESC_PTR);
    let len = load<u32>(d + DESC_LEN);
    const udp: usize = (flags & ESP_F_PUSH_UDP) != 0 ? UDP_HLEN : 0;
    if (p < <usize>ESP_PUSH + udp) {
      drop(ectx, d, DROP_MALFORMED);
      continue;
    }
    const seq = load<u64>(sa + SA_SEQ) + 1;
    const esn = (load<u32>(sa + SA_FLAGS) & ESP_SA_F_ESN) != 0;
    if (esn ? seq == 0 : seq > 0xffffffff) {
      drop(ectx, d, DROP_SEQ_EXHAUSTED);
      continue;
    }
    if (udp != 0) {
      // The datagram's own UDP header (RFC 4303 transport mode protects UDP + VXLAN); its ports are
      // hidden by the encryption, so both are 4789, and the checksum is 0 (allowed on IPv4).
      p -= udp;
      len += <u32>udp;
      store<u32>(p, (bswap<u16>(<u16>VXLAN_PORT) as u32) | ((bswap<u16>(<u16>VXLAN_PORT) as u32) << 16));
      store<u32>(p + 4, <u32>bswap<u16>(<u16>len));
    }
    store<u64>(sa + SA_SEQ, seq);
    const ivp = <usize>load<u32>(sa + SA_IVCTR);
    const iv = load<u64>(ivp) + 1;
    store<u64>(ivp, iv);
    const esp = p - ESP_PUSH;
    store<u32>(esp, bswap<u32>(load<u32>(sa + SA_SPI)));
    store<u32>(esp + 4, bswap<u32>(<u32>seq));
    store<u64>(esp + 8, bswap<u64>(iv));
    // RFC 4303 2.4: the ciphertext ends on a 4-byte boundary; pad bytes are 1, 2, 3.
    const pad: u32 = (4 - ((len + 2) & 3)) & 3;
    const t = p + len;
    for (let k: u32 = 0; k < pad; k++) store<u8>(t + k, <u8>(k + 1));
    store<u8>(t + pad, <u8>pad);
    store<u8>(t + pad + 1, <u8>IPPROTO_UDP);
    const textLen = len + pad + 2;
    stage(ectx, count, i, sa, esp, textLen, seq);
    store<u32>(d + DESC_PTR, <u32>esp);
    store<u32>(d + DESC_LEN, ESP_PUSH + textLen + load<u32>(sa + SA_ICV));
    add64(sa + SA_PACKETS, 1);
    add64(sa + SA_BYTES, len);
    add64(cnt + ESP_CNT_SEALED, 1);
    add64(cnt + ESP_CNT_SEALED_BYTES, len);
    count++;
  }
  if ((flags & ESP_F_STAGE) == 0) grouped(ectx, 0, count, true, <usize>load<u32>(ectx + ESPX_SCRATCH));
  return count;
}

/**
 * Runs the GCM part of staged descriptors lo..hi-1 of a seal with ESP_F_STAGE (whose return value
 * is the number staged), using `scratch` (GCM_SCRATCH_SIZE bytes; 0: the context's). Disjoint
 * ranges touch disjoint staged entries and packets, so two threads may run one each at once: the
 * per-SA state (sequence numbers, IV counters, counters) was all assigned by the staging call.
 */
export function esp_gcm_staged(ectx: usize, lo: u32, hi: u32, scratch: usize): void {
  grouped(ectx, lo, hi, true, scratch != 0 ? scratch : <usize>load<u32>(ectx + ESPX_SCRATCH));
}

function openChunk(ectx: usize, descs: usize, m: u32, flags: u32): u32 {
  let count: u32 = 0;
  for (let i: u32 = 0; i < m; i++) {
    const d = descs + <usize>i * DESC_SIZE;
    const p = <usize>load<u32>(d + DESC_PTR);
    const len = load<u32>(d + DESC_LEN);
    if (len < 8) {
      drop(ectx, d, DROP_TRUNCATED);
      continue;
    }
    const sa = findIn(ectx, bswap<u32>(load<u32>(p)));
    if (sa == 0) {
      drop(ectx, d, DROP_BAD_SPI);
      continue;
    }
    const icv = load<u32>(sa + SA_ICV);
    if (len < <u32>ESP_PUSH + 4 + icv) {
      drop(ectx, d, DROP_TRUNCATED);
      continue;
    }
    const textLen = len - ESP_PUSH - icv;
    if ((textLen & 3) != 0) {
      drop(ectx, d, DROP_MALFORMED);
      continue;
    }
    const lo = bswap<u32>(load<u32>(p + 4));
    const seq = (load<u32>(sa + SA_FLAGS) & ESP_SA_F_ESN) != 0 ? inferSeq(sa, lo) : <u64>lo;
    if (!replayOk(sa, seq)) {
      add64(sa + SA_REPLAY, 1);
      drop(ectx, d, DROP_REPLAY);
      continue;
    }
    stage(ectx, count, i, sa, p, textLen, seq);
    store<u32>(d + DESC_ARG, <u32>((sa - <usize>load<u32>(ectx + ESPX_SAS)) / ESP_SA_SIZE));
    count++;
  }
  grouped(ectx, 0, count, false, <usize>load<u32>(ectx + ESPX_SCRATCH));
  let opened: u32 = 0;
  const cnt = <usize>load<u32>(ectx + ESPX_CNT);
  const gcmd = <usize>load<u32>(ectx + ESPX_GCMD);
  const idx = <usize>load<u32>(ectx + ESPX_IDX);
  for (let k: u32 = 0; k < count; k++) {
    const d = descs + <usize>load<u32>(idx + (<usize>k << 2)) * DESC_SIZE;
    const g = gcmd + <usize>k * GCMD_SIZE;
    const sa = saAddr(ectx, load<u32>(d + DESC_ARG));
    const text = <usize>load<u32>(g + GCMD_TEXT);
    const textLen = load<u32>(g + GCMD_TEXT_LEN);
    if (load<u32>(g + GCMD_STATUS) != GCM_OK) {
      add64(sa + SA_AUTH_FAIL, 1);
      drop(ectx, d, DROP_AUTH);
      continue;
    }
    const seq = load<u64>(<usize>load<u32>(g + GCMD_NONCE) - ESP_REC_NONCE + ESP_REC_SEQ);
    const reason = afterAuth(sa, text, textLen, flags, seq);
    if (reason != 0) {
      memory.fill(text, 0, textLen);
      if (reason == DROP_REPLAY) add64(sa + SA_REPLAY, 1);
      drop(ectx, d, reason);
      continue;
    }
    const padLen = <u32>load<u8>(text + textLen - 2);
    let out = text;
    let outLen = textLen - 2 - padLen;
    if ((flags & ESP_F_PULL_UDP) != 0) {
      out += UDP_HLEN;
      outLen -= UDP_HLEN;
    }
    store<u32>(d + DESC_PTR, <u32>out);
    store<u32>(d + DESC_LEN, outLen);
    store<u32>(d + DESC_VERDICT, VERDICT_LOCAL);
    add64(sa + SA_PACKETS, 1);
    add64(sa + SA_BYTES, textLen - 2 - padLen);
    add64(cnt + ESP_CNT_OPENED, 1);
    add64(cnt + ESP_CNT_OPENED_BYTES, textLen - 2 - padLen);
    opened++;
  }
  return opened;
}

/**
 * Checks an authentic packet: the replay window again (it may have moved since the pre-check,
 * e.g. a duplicate earlier in the batch), then marks it; then the trailer and, with
 * ESP_F_PULL_UDP, the inner UDP header. Returns 0 or the DROP_* reason.
 */
function afterAuth(sa: usize, text: usize, textLen: u32, flags: u32, seq: u64): u32 {
  if (!replayOk(sa, seq)) return DROP_REPLAY;
  replayMark(sa, seq);
  const padLen = <u32>load<u8>(text + textLen - 2);
  if (padLen + 2 > textLen) return DROP_BAD_PADDING;
  const pad = text + textLen - 2 - padLen;
  for (let k: u32 = 0; k < padLen; k++) {
    if (<u32>load<u8>(pad + k) != k + 1) return DROP_BAD_PADDING;
  }
  if (<u32>load<u8>(text + textLen - 1) != <u32>IPPROTO_UDP) return DROP_MALFORMED;
  if ((flags & ESP_F_PULL_UDP) != 0) {
    const len = textLen - 2 - padLen;
    if (len < <u32>UDP_HLEN) return DROP_TRUNCATED;
    const ulen = <u32>bswap<u16>(load<u16>(text + 4));
    const dport = <u32>bswap<u16>(load<u16>(text + 2));
    if (ulen != len || dport != <u32>VXLAN_PORT) return DROP_MALFORMED;
  }
  return 0;
}

/**
 * Runs the staged GCM descriptors grouped by key: one gcm_*_batch call per distinct key. Groups
 * are formed in place by swapping staged entries (GCM descriptor, key, descriptor index); the
 * nonces are referenced by address, so they stay put.
 */
function grouped(ectx: usize, lo: u32, count: u32, seal: bool, scratch: usize): void {
  const gcmd = <usize>load<u32>(ectx + ESPX_GCMD);
  const keys = <usize>load<u32>(ectx + ESPX_KEYS);
  const idx = <usize>load<u32>(ectx + ESPX_IDX);
  let done: u32 = lo;
  while (done < count) {
    const key = load<u32>(keys + (<usize>done << 2));
    let j = done + 1;
    for (let i = done + 1; i < count; i++) {
      if (load<u32>(keys + (<usize>i << 2)) != key) continue;
      if (i != j) swapStaged(gcmd, keys, idx, i, j);
      j++;
    }
    const g = gcmd + <usize>done * GCMD_SIZE;
    if (seal) gcm_seal_batch(<usize>key, g, j - done, scratch);
    else gcm_open_batch(<usize>key, g, j - done, scratch);
    done = j;
  }
}

function swapStaged(gcmd: usize, keys: usize, idx: usize, a: u32, b: u32): void {
  const ga = gcmd + <usize>a * GCMD_SIZE;
  const gb = gcmd + <usize>b * GCMD_SIZE;
  const a0 = v128.load(ga);
  const a1 = v128.load(ga, 16);
  v128.store(ga, v128.load(gb));
  v128.store(ga, v128.load(gb, 16), 16);
  v128.store(gb, a0);
  v128.store(gb, a1, 16);
  swap32(keys, a, b);
  swap32(idx, a, b);
}

@inline function swap32(base: usize, a: u32, b: u32): void {
  const pa = base + (<usize>a << 2);
  const pb = base + (<usize>b << 2);
  const t = load<u32>(pa);
  store<u32>(pa, load<u32>(pb));
  store<u32>(pb, t);
}

// ---- anti-replay (RFC 4303 3.4.3, appendix A2) --------------------------------------------------
// T = SA_SEQ is the highest authenticated sequence number; bit (s mod W) of the ring is set when s
// was received, for s in [T - W + 1, T]. Bits of numbers that leave the window are cleared as T
// advances, so a bit never speaks for two numbers at once.

@inline function winWord(sa: usize, s: u64): usize {
  return sa + SA_WINDOW + (<usize>((<u32>s & (ESP_REPLAY_WINDOW - 1)) >> 5) << 2);
}

@inline function winBit(s: u64): u32 {
  return 1 << (<u32>s & 31);
}

function replayOk(sa: usize, s: u64): bool {
  if (s == 0) return false;
  const t = load<u64>(sa + SA_SEQ);
  if (s > t) return true;
  if (t - s >= <u64>ESP_REPLAY_WINDOW) return false;
  return (load<u32>(winWord(sa, s)) & winBit(s)) == 0;
}

function replayMark(sa: usize, s: u64): void {
  const t = load<u64>(sa + SA_SEQ);
  if (s > t) {
    if (s - t >= <u64>ESP_REPLAY_WINDOW) {
      memory.fill(sa + SA_WINDOW, 0, ESP_REPLAY_WINDOW >> 3);
    } else {
      for (let x = t + 1; x < s; x++) {
        const w = winWord(sa, x);
        store<u32>(w, load<u32>(w) & ~winBit(x));
      }
    }
    store<u64>(sa + SA_SEQ, s);
  }
  const w = winWord(sa, s);
  store<u32>(w, load<u32>(w) | winBit(s));
}

/**
 * The full 64-bit sequence number of a packet carrying the low half `lo` (RFC 4303 appendix A2.2):
 * the high half that puts it nearest the window [T - W + 1, T]. 0 (never valid) for a number that
 * would lie before the first one.
 */
function inferSeq(sa: usize, lo: u32): u64 {
  const t = load<u64>(sa + SA_SEQ);
  const tl = <u32>t;
  const th = <u32>(t >> 32);
  const w = <u32>ESP_REPLAY_WINDOW;
  let hi = th;
  if (tl >= w - 1) {
    if (lo < tl - w + 1) hi = th + 1;
  } else if (lo >= tl - w + 1) {
    // The window reaches back into the previous 2^32 block.
    if (th == 0) return 0;
    hi = th - 1;
  }
  return (<u64>hi << 32) | <u64>lo;
}
