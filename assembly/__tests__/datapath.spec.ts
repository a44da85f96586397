// The datapath's tables and pipeline in WASM itself: FDB probing and backward-shift deletes in a
// tiny table, the peer and port tables, the event ring's bound and de-duplication, the ARP proxy
// reply, and one encap -> decap round trip. The long random cross-checks against the TypeScript
// reference live in test/fdb.test.ts and test/datapath.test.ts.
import {
  CTX_AGEING,
  CTX_EVENT_HEAD,
  CTX_EVENT_LOST,
  CTX_EVENT_SLOTS,
  CTX_FDB_CAPACITY,
  CTX_FDB_COUNT,
  CTX_FDB_MASK,
  CTX_FLAGS,
  CTX_MAX_FLOOD,
  CTX_MAX_PEERS,
  CTX_MAX_PORTS,
  CTX_NEIGH_CAPACITY,
  CTX_SIZE,
  DESC_ADDR,
  DESC_ARG,
  DESC_LEN,
  DESC_PTR,
  DESC_SIZE,
  DESC_VERDICT,
  DESC_VNI,
  DP_F_ARP_PROXY,
  DP_F_L2MISS,
  DP_F_L3MISS,
  DP_F_LEARNING,
  DROP_L2_MISS,
  DROP_L3_MISS,
  DROP_UNKNOWN_PEER,
  NO_INDEX,
  ST_FDB_FULL,
  ST_FDB_STATIC_EXISTS,
  ST_INVALID_MAC,
  ST_NOT_FOUND,
  ST_OK,
  VERDICT_DROP,
  VERDICT_LOCAL,
  VERDICT_REPLY,
  VERDICT_SEND,
} from '../constants';
import { dp_decap, dp_encap, dp_peer_add, dp_peer_remove, dp_port_add, dp_setup } from '../datapath';
import { event_push } from '../events';
import { fdb_add, fdb_age, fdb_flush_vni, fdb_learn, fdb_lookup, fdb_remove } from '../fdb';
import { vx_alloc } from '../mem';
import { neigh_add, neigh_find } from '../neigh';
import { peer_find } from '../peers';

function make(fdbCap: u32, flags: u32): usize {
  const ctx = vx_alloc(CTX_SIZE);
  store<u32>(ctx, fdbCap, CTX_FDB_CAPACITY);
  store<u32>(ctx, 4, CTX_MAX_PEERS);
  store<u32>(ctx, 4, CTX_MAX_PORTS);
  store<u32>(ctx, 16, CTX_NEIGH_CAPACITY);
  store<u32>(ctx, 4, CTX_EVENT_SLOTS);
  store<u32>(ctx, 4, CTX_MAX_FLOOD);
  store<u32>(ctx, 300, CTX_AGEING);
  store<u32>(ctx, flags, CTX_FLAGS);
  expect(dp_setup(ctx)).toBe(ST_OK);
  return ctx;
}

const sa = vx_alloc(64);
/** Writes sockaddr_in 10.0.0.`host`:4789 at `sa` and returns it. */
function sin(host: u8): usize {
  memory.fill(sa, 0, 32);
  store<u16>(sa, 2);
  store<u16>(sa, bswap<u16>(4789), 2);
  store<u32>(sa, 0x0000000a | (<u32>host << 24), 4);
  return sa;
}

/** A locally administered unicast MAC numbered i. */
function mac(i: u64): u64 {
  return (i << 8) | 0x02;
}

describe('fdb', () => {
  it('probes, fills to capacity exactly, and deletes without tombstones', () => {
    const ctx = make(7, 0); // 8 slots, 7 usable: every cluster wraps
    expect(load<u32>(ctx, CTX_FDB_MASK)).toBe(7);
    const p = <u32>dp_peer_add(ctx, sin(1), 16);
    for (let i: u64 = 1; i <= 7; i++) expect(fdb_add(ctx, 5, mac(i), p, 0, 0)).toBe(ST_OK);
    expect(fdb_add(ctx, 5, mac(8), p, 0, 0)).toBe(ST_FDB_FULL);
    for (let i: u64 = 1; i <= 7; i++) expect(fdb_lookup(ctx, 5, mac(i))).toBe(p);
    expect(fdb_lookup(ctx, 6, mac(1))).toBe(<u32>NO_INDEX);
    // Delete every other one, then all must still be found or absent as expected.
    for (let i: u64 = 1; i <= 7; i += 2) expect(fdb_remove(ctx, 5, mac(i))).toBe(ST_OK);
    expect(fdb_remove(ctx, 5, mac(1))).toBe(ST_NOT_FOUND);
    for (let i: u64 = 1; i <= 7; i++) expect(fdb_lookup(ctx, 5, mac(i))).toBe(i % 2 ? <u32>NO_INDEX : p);
    // Churn far beyond the table size: no tombstones means no slowdown and no false "full".
    for (let round: u64 = 0; round < 1000; round++) {
      expect(fdb_add(ctx, 9, mac(100 + round), p, 0, 0)).toBe(ST_OK);
      expect(fdb_remove(ctx, 9, mac(100 + round))).toBe(ST_OK);
    }
    expect(load<u32>(ctx, CTX_FDB_COUNT)).toBe(3);
  });

  it('rejects group and zero MACs, keeps static entries from learning', () => {
    const ctx = make(16, 0);
    const a = <u32>dp_peer_add(ctx, sin(1), 16);
    const b = <u32>dp_peer_add(ctx, sin(2), 16);
    expect(fdb_add(ctx, 1, 0xffffffffffff, a, 0, 0)).toBe(ST_INVALID_MAC);
    expect(fdb_add(ctx, 1, 0, a, 0, 0)).toBe(ST_INVALID_MAC);
    expect(fdb_add(ctx, 1, mac(1), a, 0, 0)).toBe(ST_OK);
    expect(fdb_learn(ctx, 1, mac(1), b, 10)).toBe(-1);
    expect(fdb_lookup(ctx, 1, mac(1))).toBe(a);
    expect(fdb_add(ctx, 1, mac(1), b, 0, 0)).toBe(ST_FDB_STATIC_EXISTS);
    expect(fdb_learn(ctx, 1, mac(2), a, 10)).toBe(1);
    expect(fdb_learn(ctx, 1, mac(2), b, 20)).toBe(1); // moved
    expect(fdb_learn(ctx, 1, mac(2), b, 30)).toBe(0); // refreshed
    expect(fdb_age(ctx, 329, 1 << 20)).toBe(0);
    expect(fdb_age(ctx, 330, 1 << 20)).toBe(1);
    expect(fdb_lookup(ctx, 1, mac(1))).toBe(a);
    expect(fdb_flush_vni(ctx, 1)).toBe(1);
    expect(load<u32>(ctx, CTX_FDB_COUNT)).toBe(0);
  });

  it('removing a peer removes its entries; its index is reused', () => {
    const ctx = make(16, 0);
    const a = <u32>dp_peer_add(ctx, sin(1), 16);
    const b = <u32>dp_peer_add(ctx, sin(2), 16);
    expect(<u32>dp_peer_add(ctx, sin(1), 16)).toBe(a); // idempotent
    expect(fdb_add(ctx, 1, mac(1), a, 0, 0)).toBe(ST_OK);
    expect(fdb_add(ctx, 1, mac(2), b, 0, 0)).toBe(ST_OK);
    expect(dp_peer_remove(ctx, a)).toBe(ST_OK);
    expect(fdb_lookup(ctx, 1, mac(1))).toBe(<u32>NO_INDEX);
    expect(fdb_lookup(ctx, 1, mac(2))).toBe(b);
    expect(peer_find(ctx, sin(1), 16)).toBe(<u32>NO_INDEX);
    expect(peer_find(ctx, sin(2), 16)).toBe(b);
    expect(<u32>dp_peer_add(ctx, sin(3), 16)).toBe(a);
  });
});

describe('events', () => {
  it('drops repeats of the newest event and counts overflow', () => {
    const ctx = make(16, 0); // asks for 4 slots, gets the minimum, 8
    expect(load<u32>(ctx, CTX_EVENT_SLOTS)).toBe(8);
    event_push(ctx, 1, 5, 42);
    event_push(ctx, 1, 5, 42);
    expect(load<u32>(ctx, CTX_EVENT_HEAD)).toBe(1);
    for (let i: u64 = 0; i < 9; i++) event_push(ctx, 1, 5, 100 + i);
    expect(load<u32>(ctx, CTX_EVENT_HEAD)).toBe(8);
    expect(load<u32>(ctx, CTX_EVENT_LOST)).toBe(2);
  });
});

const descs = vx_alloc(4 * DESC_SIZE);
const frame = vx_alloc(1024) + 128;

describe('pipeline', () => {
  it('answers an ARP request in place, drops and reports an unknown one', () => {
    const ctx = make(16, DP_F_ARP_PROXY | DP_F_L3MISS);
    const port = <u32>dp_port_add(ctx, 77);
    expect(neigh_add(ctx, 77, 0x0501000a, 0x665544332202)).toBe(ST_OK); // 10.0.1.5 -> 02:22:33:44:55:66
    expect(neigh_find(ctx, 77, 0x0501000a)).not.toBe(0);
    // Who has 10.0.1.5? tell 10.0.1.9 (from 02:00:00:00:00:09)
    memory.fill(frame, 0, 60);
    memory.fill(frame, 0xff, 6);
    store<u64>(frame + 6, 0x0900000000000002); // src MAC 02:00:00:00:00:09 + ethertype low bytes overwritten next
    store<u16>(frame, 0x0608, 12);
    store<u64>(frame + 14, 0x0100040600080100); // hrd 1, pro 0800, 6, 4, op 1
    store<u32>(frame + 22, 0x00000002);
    store<u16>(frame + 26, 0x0900);
    store<u32>(frame + 28, 0x0901000a); // sender IP 10.0.1.9
    store<u32>(frame + 38, 0x0501000a); // target IP 10.0.1.5
    store<u32>(descs, <u32>frame, DESC_PTR);
    store<u32>(descs, 60, DESC_LEN);
    store<u32>(descs, port, DESC_ARG);
    expect(dp_encap(ctx, descs, 1, 0)).toBe(1);
    expect(load<u32>(descs, DESC_VERDICT)).toBe(VERDICT_REPLY);
    expect(load<u32>(descs, DESC_LEN)).toBe(42);
    expect(load<u16>(frame + 20)).toBe(0x0200); // op 2
    expect(load<u32>(frame + 28)).toBe(0x0501000a); // sender IP = the asked one
    expect(load<u32>(frame + 38)).toBe(0x0901000a); // target IP = the asker
    expect(load<u16>(frame + 6)).toBe(0x2202); // Ethernet source = neighbour MAC
    expect(load<u16>(frame)).toBe(0x0002); // Ethernet destination = asker
    // Unknown target: dropped, one L3-miss event.
    store<u16>(frame + 20, 0x0100);
    store<u32>(frame + 38, 0x0701000a);
    store<u32>(descs, port, DESC_ARG);
    store<u32>(descs, 60, DESC_LEN);
    expect(dp_encap(ctx, descs, 1, 0)).toBe(0);
    expect(load<u32>(descs, DESC_ARG)).toBe(DROP_L3_MISS);
    expect(load<u32>(ctx, CTX_EVENT_HEAD)).toBe(1);
  });

  it('encapsulates to the FDB peer and decapsulates back, learning on receive', () => {
    const ctx = make(16, DP_F_LEARNING | DP_F_L2MISS);
    const port = <u32>dp_port_add(ctx, 0x123456);
    const peer = <u32>dp_peer_add(ctx, sin(7), 16);
    const dst: u64 = 0x0000bbbbbbbb0002;
    expect(fdb_add(ctx, 0x123456, dst, peer, 0, 0)).toBe(ST_OK);
    memory.fill(frame, 0, 64);
    store<u32>(frame, <u32>dst);
    store<u16>(frame, <u16>(dst >> 32), 4);
    store<u32>(frame, 0xcccccc02, 6);
    store<u16>(frame, 0x0800, 12);
    store<u32>(descs, <u32>frame, DESC_PTR);
    store<u32>(descs, 64, DESC_LEN);
    store<u32>(descs, port, DESC_ARG);
    expect(dp_encap(ctx, descs, 1, 0)).toBe(1);
    expect(load<u32>(descs, DESC_VERDICT)).toBe(VERDICT_SEND);
    expect(load<u32>(descs, DESC_ARG)).toBe(peer);
    expect(load<u32>(descs, DESC_PTR)).toBe(<u32>frame - 8);
    expect(load<u32>(descs, DESC_LEN)).toBe(72);
    expect(load<u64>(frame - 8)).toBe(0x0056341200000008);
    // Decap from a peer we do not know: learned (learning is on), then delivered.
    store<u32>(descs, <u32>sin(9), DESC_ADDR);
    expect(dp_decap(ctx, descs, 1, 50)).toBe(1);
    expect(load<u32>(descs, DESC_VERDICT)).toBe(VERDICT_LOCAL);
    expect(load<u32>(descs, DESC_VNI)).toBe(0x123456);
    expect(load<u32>(descs, DESC_PTR)).toBe(<u32>frame);
    const learnedPeer = peer_find(ctx, sin(9), 16);
    expect(learnedPeer).not.toBe(<u32>NO_INDEX);
    expect(fdb_lookup(ctx, 0x123456, 0xcccccc02)).toBe(learnedPeer);
    // Unknown unicast: L2 miss, dropped.
    store<u32>(frame, 0x0a0a0a02);
    store<u32>(descs, <u32>frame, DESC_PTR);
    store<u32>(descs, 64, DESC_LEN);
    store<u32>(descs, port, DESC_ARG);
    expect(dp_encap(ctx, descs, 1, 0)).toBe(0);
    expect(load<u32>(descs, DESC_VERDICT)).toBe(VERDICT_DROP);
    expect(load<u32>(descs, DESC_ARG)).toBe(DROP_L2_MISS);
  });

  it('drops datagrams from unknown peers when learning is off', () => {
    const ctx = make(16, 0);
    dp_port_add(ctx, 5);
    store<u64>(frame - 8, 0x0005000000000008);
    store<u32>(descs, <u32>frame - 8, DESC_PTR);
    store<u32>(descs, 72, DESC_LEN);
    store<u32>(descs, <u32>sin(3), DESC_ADDR);
    expect(dp_decap(ctx, descs, 1, 0)).toBe(0);
    expect(load<u32>(descs, DESC_ARG)).toBe(DROP_UNKNOWN_PEER);
  });
});
