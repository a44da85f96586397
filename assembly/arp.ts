// The ARP proxy: answers ARP requests from the neighbour table in place, like Linux vxlan's
// `proxy` option (drivers/net/vxlan arp_reduce). With the proxy on, no ARP frame ever leaves
// through the tunnel: a request for a known (VNI, IP) is turned into the reply the remote host
// would have sent, and written back to the local port (VERDICT_REPLY); a request for an unknown IP
// raises an L3-miss event for the control plane and is dropped; any other ARP frame (a reply, a
// gratuitous announcement, a request for a loopback or multicast address) is dropped as
// DROP_ARP_PROXY. Only untagged Ethernet/IPv4 ARP is looked at, as in the kernel.
import {
  ARP_LEN,
  CTX_FLAGS,
  DP_F_L3MISS,
  DROP_ARP_PROXY,
  DROP_L3_MISS,
  DROP_TRUNCATED,
  ETH_HLEN,
  EVT_L3_MISS,
  NEIGH_MAC,
} from './constants';
import { event_push } from './events';
import { neigh_find } from './neigh';

const ARP_FRAME_LEN: u32 = ETH_HLEN + ARP_LEN;

/**
 * Handles the ARP frame at `p` (`len` bytes) from the port of `vni`: returns the reply's length
 * (the reply replaced the request at `p`), or -DROP_* when the frame is dropped.
 */
export function arp_reduce(ctx: usize, vni: u32, p: usize, len: u32): i32 {
  if (len < ARP_FRAME_LEN) return -DROP_TRUNCATED;
  const a = p + ETH_HLEN;
  const hrd = bswap<u16>(load<u16>(a));
  // hrd 1 (Ethernet) or 6 (IEEE 802), IPv4, 6-byte and 4-byte addresses, op 1 (request).
  if ((hrd != 1 && hrd != 6) || load<u16>(a, 2) != 0x0008 || load<u16>(a, 4) != 0x0406 || load<u16>(a, 6) != 0x0100) {
    return -DROP_ARP_PROXY;
  }
  const tip = load<u32>(a, 24);
  const t0 = tip & 0xff;
  if (t0 == 127 || (t0 >= 224 && t0 < 240)) return -DROP_ARP_PROXY;
  const n = neigh_find(ctx, vni, tip);
  if (!n) {
    if (load<u32>(ctx, CTX_FLAGS) & DP_F_L3MISS) event_push(ctx, EVT_L3_MISS, vni, <u64>tip);
    return -DROP_L3_MISS;
  }
  const sha0 = load<u32>(a, 8);
  const sha1 = load<u16>(a, 12);
  const sip = load<u32>(a, 14);
  const mac0 = load<u32>(n, NEIGH_MAC);
  const mac1 = load<u16>(n, NEIGH_MAC + 4);
  // Ethernet: to the requester, from the neighbour.
  store<u32>(p, sha0);
  store<u16>(p, sha1, 4);
  store<u32>(p, mac0, 6);
  store<u16>(p, mac1, 10);
  // ARP reply: hrd 1, IPv4, 6/4, op 2; sender = neighbour (mac, tip); target = requester.
  store<u16>(a, 0x0100);
  store<u16>(a, 0x0200, 6);
  store<u32>(a, mac0, 8);
  store<u16>(a, mac1, 12);
  store<u32>(a, tip, 14);
  store<u32>(a, sha0, 18);
  store<u16>(a, sha1, 22);
  store<u32>(a, sip, 24);
  return <i32>ARP_FRAME_LEN;
}
