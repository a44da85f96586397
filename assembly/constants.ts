// Constants shared by assembly/ (AssemblyScript) and src/ (TypeScript).
//
// This file is compiled by both compilers, so it holds only `export const NAME = <integer literal>`
// (AssemblyScript infers i32, TypeScript number). Anything that describes the wire format, the
// memory layout of a batch, a verdict or a status code lives here and nowhere else.

// ---- Wire format -------------------------------------------------------------------------------
export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;
export const ETH_P_IPV4 = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const ETH_P_IPV6 = 0x86dd;
export const IPV4_HLEN = 20;
export const IPV6_HLEN = 40;
export const UDP_HLEN = 8;
export const TCP_HLEN = 20;
export const ARP_LEN = 28;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ESP = 50;

export const VXLAN_HLEN = 8;
export const VXLAN_FLAG_I = 0x08;
export const VXLAN_PORT = 4789;
export const VNI_MAX = 0xffffff;
/** Outer IPv4 + UDP + VXLAN in front of the inner frame: the RFC 7348 overhead on IPv4 is this + 14. */
export const VXLAN_OVERHEAD_V4 = 36;
export const VXLAN_OVERHEAD_V6 = 56;
/** Overlay MTU = underlay MTU - this (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14). */
export const VXLAN_MTU_OVERHEAD = 50;

// ---- Memory layout of packet buffers -----------------------------------------------------------
/** Bytes kept free in front of a received frame so outer headers (and ESP, virtio_net_hdr) fit in place. */
export const HEADROOM = 128;
/** Bytes kept free after a frame for an authentication tag and ESP trailer. */
export const TAILROOM = 64;

// ---- Crypto --------------------------------------------------------------------------------------
export const GCM_NONCE_LEN = 12;
export const GCM_TAG_LEN = 16;
export const ESP_ICV_LEN_DEFAULT = 8;

// ---- Verdicts: what a batch function decided for each packet (Desc.verdict) ----------------------
export const VERDICT_DROP = 0; // Desc.arg = DROP_* reason
export const VERDICT_SEND = 1; // encap: send to the peer whose index is in Desc.arg
export const VERDICT_FLOOD = 2; // encap: broadcast/multicast/unknown unicast: replicate to the VNI's flood list
export const VERDICT_LOCAL = 3; // decap: deliver the inner frame to the local port in Desc.arg
export const VERDICT_REPLY = 4; // encap: a reply (ARP proxy) was built in place; write it back to the port

// ---- Drop reasons (Desc.arg when verdict is DROP; also the index of the per-reason counter) -----
export const DROP_NONE = 0;
export const DROP_TRUNCATED = 1; // shorter than the headers it claims
export const DROP_VXLAN_FLAGS = 2; // VXLAN flags other than I, or I missing
export const DROP_VXLAN_RESERVED = 3; // non-zero reserved bits in the VXLAN header
export const DROP_UNKNOWN_VNI = 4; // no local port for this VNI
export const DROP_UNKNOWN_PEER = 5; // source is not a known peer and learning is off
export const DROP_L2_MISS = 6; // unicast destination MAC not in the FDB (and flooding unknown unicast is off)
export const DROP_L3_MISS = 7; // ARP request for an IP the neighbour table does not know
export const DROP_MALFORMED = 8; // a header field that cannot be valid (bad IHL, bad ARP sizes, ...)
export const DROP_OVERSIZE = 9; // larger than the MTU or the buffer
export const DROP_NO_PEERS = 10; // flood with an empty flood list
export const DROP_LOOP = 11; // source MAC is one of our own (reflection)
export const DROP_AUTH = 12; // authentication (AES-GCM tag) failed
export const DROP_REPLAY = 13; // outside or already seen in the anti-replay window
export const DROP_CLEARTEXT = 14; // cleartext VXLAN for an encrypted network
export const DROP_REASONS = 16; // number of reason slots in a counter block

// ---- Packet descriptors: the batch format that crosses every JS/WASM and thread boundary ------
// A batch is an array of DESC_SIZE-byte descriptors in linear memory, one per packet. The packet
// bytes live elsewhere (in a slot of a packet buffer, with HEADROOM before and TAILROOM after).
export const DESC_SIZE = 32;
export const DESC_PTR = 0; // u32: address of the packet's first byte (moves back when headers are pushed)
export const DESC_LEN = 4; // u32: packet length in bytes
export const DESC_VERDICT = 8; // u32 out: VERDICT_*
export const DESC_ARG = 12; // u32 out: peer index (SEND), port index (LOCAL), DROP_* reason (DROP)
export const DESC_ADDR = 16; // u32: address of a Linux sockaddr_in/sockaddr_in6 (decap in: source; encap out: peer)
export const DESC_VNI = 20; // u32: VNI (decap out; encap in when the port has none)
export const DESC_AUX = 24; // u32: per-feature (e.g. GSO segment size, flow hash)
export const DESC_AUX2 = 28; // u32: per-feature
/** Index meaning "none" in peer, port and table slots. */
export const NO_INDEX = -1;
