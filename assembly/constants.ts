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

// ---- Packet parse result (assembly/parse.ts): one PARSE_SIZE-byte record per packet, u32 fields --
// The parser goes as deep as the packet allows and stops at the first header that is cut short or
// cannot be valid; PARSE_STATUS says why it stopped (0 = every header it knows was whole) and
// PARSE_FLAGS says which headers were found whole. Offsets are from the frame's first byte; an
// offset of 0 means "not reached" (L3 cannot start at 0). Values are host-order numbers.
export const PARSE_SIZE = 64;
export const PARSE_STATUS = 0; // PARSE_OK or a DROP_* reason (DROP_TRUNCATED, DROP_MALFORMED)
export const PARSE_FLAGS = 4; // PARSE_F_* bits
export const PARSE_ETHERTYPE = 8; // ethertype after any VLAN tags (or the 802.3 length, < 0x600)
export const PARSE_VLAN = 12; // VLAN id of the innermost tag (PARSE_F_VLAN)
export const PARSE_VLAN_OUTER = 16; // VLAN id of the outer tag of a QinQ pair (PARSE_F_QINQ)
export const PARSE_L3_OFF = 20; // offset of the ARP/IPv4/IPv6 header
export const PARSE_L3_LEN = 24; // bytes of L3 the header claims (IPv4 total length, 40 + IPv6 payload length, 28 for ARP)
export const PARSE_L4_PROTO = 28; // IPv4 protocol / IPv6 last next-header (after skipped extension headers)
export const PARSE_L4_OFF = 32; // offset of the UDP/TCP (or other L4) header
export const PARSE_PAYLOAD_OFF = 36; // offset of the UDP/TCP payload
export const PARSE_PAYLOAD_LEN = 40; // bytes of UDP/TCP payload (bounded by the IP and UDP lengths)
export const PARSE_SPORT = 44; // UDP/TCP source port
export const PARSE_DPORT = 48; // UDP/TCP destination port
export const PARSE_ARP_OP = 52; // ARP operation (1 request, 2 reply)
export const PARSE_FRAG_OFF = 56; // IPv4/IPv6 fragment offset in bytes (PARSE_F_FRAG)
export const PARSE_OK = 0;
export const PARSE_F_ETH = 1; // Ethernet header whole
export const PARSE_F_VLAN = 2; // one or more 802.1Q/802.1ad tags
export const PARSE_F_QINQ = 4; // two tags (outer 0x88a8 or 0x8100, inner 0x8100)
export const PARSE_F_ARP = 8; // Ethernet/IPv4 ARP, 28 bytes whole
export const PARSE_F_IPV4 = 16; // IPv4 header whole, checksum not verified
export const PARSE_F_IPV6 = 32; // IPv6 fixed header whole
export const PARSE_F_IPV6_EXT = 64; // IPv6 extension headers were skipped
export const PARSE_F_FRAG = 128; // a fragment (MF set or offset > 0)
export const PARSE_F_UDP = 256; // UDP header whole and its length field consistent
export const PARSE_F_TCP = 512; // TCP header with options whole
export const PARSE_F_L4_OTHER = 1024; // an L4 protocol this parser does not look into
export const PARSE_MAX_VLAN_TAGS = 2;
export const PARSE_MAX_IPV6_EXT = 8; // extension headers skipped before giving up (DROP_MALFORMED)

// ---- Outer IPv4/UDP/VXLAN build options (assembly/outer.ts): an OUTER_SIZE-byte struct ----------
export const OUTER_SIZE = 32;
export const OUTER_SRC_IP = 0; // u32: local underlay IPv4 address, bytes in network order (as in sin_addr)
export const OUTER_TTL = 4; // u32: outer TTL 1..255 (0 means OUTER_TTL_DEFAULT)
export const OUTER_TOS = 8; // u32: outer TOS/DSCP byte
export const OUTER_FLAGS = 12; // u32: OUTER_F_* bits
export const OUTER_PORT_MIN = 16; // u32: UDP source port range [min, max), like Linux's vxlan `srcport MIN MAX`
export const OUTER_PORT_MAX = 20; // u32
export const OUTER_IP_ID = 24; // u32: next IP id for datagrams without DF (a plain counter)
export const OUTER_F_DF = 1; // set Don't Fragment (the IP id is then 0, RFC 6864)
export const OUTER_F_UDP_CSUM = 2; // compute the outer UDP checksum (else 0, as Linux vxlan does by default)
export const OUTER_TTL_DEFAULT = 64;
export const OUTER_PORT_MIN_DEFAULT = 32768; // Linux's default ephemeral range
export const OUTER_PORT_MAX_DEFAULT = 61000;
