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
export const DROP_BAD_SPI = 16; // ESP open: no inbound SA for the SPI (or SPI 0: an IKE/non-ESP marker)
export const DROP_BAD_PADDING = 17; // ESP open: authentic, but pad bytes/pad length inconsistent
export const DROP_NO_SA = 18; // ESP seal: no outbound SA bound for the peer (or the SA index is not live)
export const DROP_SEQ_EXHAUSTED = 19; // ESP seal: the SA sent 2^32 - 1 packets (rekey needed; never wraps)
export const DROP_ESP_FOR_PLAIN = 20; // authentic ESP carrying VXLAN for a network that is not encrypted
export const DROP_REASONS = 24; // number of reason slots in a counter block

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

// ---- virtio_net_hdr (TAP with IFF_VNET_HDR; owner: src/io/tap.ts) ------------------------------
// A TAP opened with IFF_VNET_HDR reads and writes this header in front of every frame. TapDevice
// keeps it in the headroom: the header occupies [DESC_PTR - VNET_HDR_LEN, DESC_PTR).
export const VNET_HDR_LEN = 12; // struct virtio_net_hdr_v1 (with num_buffers), set by TUNSETVNETHDRSZ
export const VNET_FLAGS = 0; // u8: VNET_F_*
export const VNET_GSO_TYPE = 1; // u8: VNET_GSO_*
export const VNET_HDR_LEN_FIELD = 2; // u16 LE: length of the headers (Ethernet + IP + TCP)
export const VNET_GSO_SIZE = 4; // u16 LE: payload bytes per segment (the MSS)
export const VNET_CSUM_START = 6; // u16 LE: where checksumming starts (from the Ethernet header)
export const VNET_CSUM_OFFSET = 8; // u16 LE: where to store the checksum, from csum_start
export const VNET_F_NEEDS_CSUM = 1; // the L4 checksum is partial (pseudo-header sum only)
export const VNET_F_DATA_VALID = 2; // the checksum was verified (received)
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_UDP = 3;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_UDP_L4 = 5;
export const VNET_GSO_ECN = 0x80;

// ---- Datapath tables and batch pipeline (assembly/datapath.ts, fdb, peers, ports, neigh, arp) --
// All state of one datapath hangs off a context struct (CTX_SIZE bytes, u32 fields) whose address
// is passed to every export. The host writes the config fields, then dp_setup() carves the tables.
export const DROP_ARP_PROXY = 15; // ARP frame consumed by the ARP proxy without a reply (not a request, bad target)
export const CTX_SIZE = 256;
export const CTX_FDB_CAPACITY = 0; // config u32: max FDB entries (ERR_FDB_FULL beyond)
export const CTX_MAX_PEERS = 4; // config u32: peer table size (<= PEER_INDEX_MAX)
export const CTX_MAX_PORTS = 8; // config u32: local ports (one per VNI)
export const CTX_NEIGH_CAPACITY = 12; // config u32: max neighbour entries
export const CTX_EVENT_SLOTS = 16; // config u32: event ring size, a power of two
export const CTX_MAX_FLOOD = 20; // config u32: peers per flood list
export const CTX_AGEING = 24; // config u32: seconds a learned FDB entry lives without traffic
export const CTX_FLAGS = 28; // config u32: DP_F_*
export const CTX_FDB = 32; // ptr: FDB slots (FDB_ENTRY_SIZE each)
export const CTX_FDB_MASK = 36; // slots - 1
export const CTX_FDB_SHIFT = 40; // 64 - log2(slots): the hash keeps its top bits
export const CTX_FDB_COUNT = 44; // entries in use
export const CTX_FDB_CURSOR = 48; // next slot the incremental ageing sweep looks at
export const CTX_PEERS = 52; // ptr: peer entries (PEER_SIZE each)
export const CTX_PEER_HASH = 56; // ptr: u32 slots holding peer index + 1 (0 = empty), keyed by address
export const CTX_PEER_HASH_MASK = 60;
export const CTX_PEER_HASH_SHIFT = 64;
export const CTX_PEER_COUNT = 68;
export const CTX_PORTS = 72; // ptr: port entries (PORT_SIZE each)
export const CTX_PORT_HASH = 76; // ptr: u32 slots holding port index + 1, keyed by VNI
export const CTX_PORT_HASH_MASK = 80;
export const CTX_PORT_HASH_SHIFT = 84;
export const CTX_PORT_COUNT = 88;
export const CTX_FLOOD = 92; // ptr: flood lists, one per port, FLOOD stride = 4 + 4 * max flood
export const CTX_NEIGH = 96; // ptr: neighbour slots (NEIGH_ENTRY_SIZE each)
export const CTX_NEIGH_MASK = 100;
export const CTX_NEIGH_SHIFT = 104;
export const CTX_NEIGH_COUNT = 108;
export const CTX_EVENTS = 112; // ptr: event ring records (EVT_SIZE each)
export const CTX_EVENT_HEAD = 116; // u32 events written (WASM advances)
export const CTX_EVENT_TAIL = 120; // u32 events read (the host advances after draining)
export const CTX_EVENT_LOST = 124; // u32 events dropped because the ring was full
export const CTX_CNT_GLOBAL = 128; // ptr: one counter block: every drop by reason, and totals
export const CTX_CNT_PORTS = 132; // ptr: one counter block per port
export const CTX_CNT_PEERS = 136; // ptr: one counter block per peer
export const CTX_MEM_BYTES = 140; // bytes dp_setup allocated (all tables)
export const CTX_FDB_BYTES = 144; // bytes of the FDB slots alone
export const CTX_OUTER = 148; // ptr: OUTER_SIZE options for DP_F_RAW_UNDERLAY (host-owned)
export const DP_F_LEARNING = 1; // learn inner source MACs (and unknown source peers) on decap
export const DP_F_ARP_PROXY = 2; // answer ARP requests from the neighbour table; never flood ARP
export const DP_F_FLOOD_UNKNOWN = 4; // flood unknown unicast (else drop it with DROP_L2_MISS)
export const DP_F_L2MISS = 8; // raise EVT_L2_MISS events
export const DP_F_L3MISS = 16; // raise EVT_L3_MISS events
export const DP_F_RAW_UNDERLAY = 32; // encap writes outer IPv4+UDP too (outer_v4_push; IPv4 peers only)
// FDB slot: MAC (6, wire order) | VNI low 16 (u16 LE) | VNI high 8 | flags | peer u16 | time u32.
export const FDB_ENTRY_SIZE = 16;
export const FDB_E_MAC = 0;
export const FDB_E_VNI_LO = 6;
export const FDB_E_VNI_HI = 8;
export const FDB_E_FLAGS = 9;
export const FDB_E_PEER = 10;
export const FDB_E_TIME = 12;
export const FDB_F_USED = 1;
export const FDB_F_STATIC = 2;
export const FDB_CAPACITY_MAX = 16777216;
// Control-plane record for FDB batches (host -> WASM, 16 bytes): vni u32 | MAC 6 | peer u16 | status u32.
export const FDBREC_SIZE = 16;
export const FDBREC_VNI = 0;
export const FDBREC_MAC = 4;
export const FDBREC_PEER = 10;
export const FDBREC_STATUS = 12; // out: ST_*; for lookups: the peer index or NO_INDEX
export const FDB_ADD_REPLACE = 1; // fdb_add_batch flag: a static entry with another peer is replaced
// Peer entry: a Linux sockaddr_in (16) or sockaddr_in6 (28) that DESC_ADDR points at, then metadata.
export const PEER_SIZE = 64;
export const PEER_SOCKADDR = 0;
export const PEER_ADDRLEN = 28; // u32: 16 or 28; 0 = free slot
export const PEER_FLAGS = 32; // u32: PEER_F_*
export const PEER_HASH = 36; // u32: hash of the address (for the backward-shift delete)
export const PEER_F_LEARNED = 1; // created by learning on decap (not by the control plane)
export const PEER_INDEX_MAX = 65535; // FDB slots keep the peer in 16 bits
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;
// Port entry (one local port per VNI).
export const PORT_SIZE = 16;
export const PORT_VNI = 0;
export const PORT_USED = 4; // u32: 1 when in use
// Flood list of a port (DESC_ADDR of a VERDICT_FLOOD points here): u32 count, then count u32 peer indexes.
export const FLOOD_COUNT = 0;
export const FLOOD_PEERS = 4;
// Neighbour slot and control record (16 bytes): vni|used u32 | IPv4 (wire order) | MAC 6 | status u16.
export const NEIGH_ENTRY_SIZE = 16;
export const NEIGH_VNI = 0;
export const NEIGH_IP = 4;
export const NEIGH_MAC = 8;
export const NEIGH_STATUS = 14; // record only: out ST_*
export const NEIGH_USED = 0x1000000; // set in the slot's vni word
// Event ring record (EVT_SIZE bytes): type u32 | vni u32 | 8 bytes of payload.
export const EVT_SIZE = 16;
export const EVT_TYPE = 0;
export const EVT_VNI = 4;
export const EVT_DATA = 8; // L2_MISS: MAC (6); L3_MISS: IPv4 (4, wire order); PEER_LEARNED: u32 peer index
export const EVT_L2_MISS = 1;
export const EVT_L3_MISS = 2;
export const EVT_PEER_LEARNED = 3;
// Counter block (u64 each, CNT_BLOCK_SIZE bytes): global, per port, per peer.
export const CNT_BLOCK_SIZE = 256; // 64 + 8 * DROP_REASONS
export const CNT_TX_PACKETS = 0; // encap: frames sent (SEND) or flooded (FLOOD, once per frame)
export const CNT_TX_BYTES = 8; // inner frame bytes of those
export const CNT_RX_PACKETS = 16; // decap: frames delivered (LOCAL)
export const CNT_RX_BYTES = 24; // inner frame bytes of those
export const CNT_FLOOD_PACKETS = 32; // of tx, how many were flooded
export const CNT_REPLIES = 40; // ARP proxy replies built
export const CNT_LEARNED = 48; // FDB entries learned or moved by learning
export const CNT_LEARN_REFUSED = 56; // learning refused: static entry with another peer, or FDB full
export const CNT_DROPS = 64; // + 8 * DROP_* reason
// Status codes returned by the datapath's control functions (the host maps them to VxError codes).
export const ST_OK = 0;
export const ST_FDB_FULL = 1;
export const ST_FDB_STATIC_EXISTS = 2; // a static entry with another peer is there (use replace)
export const ST_NOT_FOUND = 3;
export const ST_INVALID_MAC = 4; // zero or group (multicast/broadcast) MAC in a unicast table
export const ST_INVALID_VNI = 5;
export const ST_INVALID_PEER = 6;
export const ST_PEER_TABLE_FULL = 7;
export const ST_NEIGH_FULL = 8;
export const ST_PORT_TABLE_FULL = 9;
export const ST_INVALID_ADDR = 10; // not a sockaddr_in/sockaddr_in6
export const ST_FLOOD_FULL = 11;
export const ST_INVALID_PORT = 12;
export const ST_INVALID_IP = 13;
// Checksum verdict bits (assembly/checksum.ts csum_verify_batch, written to DESC_AUX2).
export const CSUM_V_IP_OK = 1; // IPv4 header checksum intact
export const CSUM_V_IP_BAD = 2;
export const CSUM_V_L4_OK = 4; // UDP/TCP checksum with the pseudo-header intact
export const CSUM_V_L4_BAD = 8;
export const CSUM_V_L4_NONE = 16; // UDP checksum field 0: none sent (accepted on IPv4)
export const CSUM_V_BAD = 10; // CSUM_V_IP_BAD | CSUM_V_L4_BAD

// ---- AES-GCM (assembly/aes.ts, ghash.ts, gcm.ts; src/crypto/) -----------------------------------
// A key context is one region of GCM_CTX_SIZE bytes from core().alloc(), expanded once by
// gcm_init and then only read (several live at once for key rotation; workers share them).
export const GCM_CTX_SIZE = 27392;
export const GCM_CTX_NR = 0; // u32: AES rounds (10 or 14); 0 = not initialised
export const GCM_CTX_KEY = 64; // the host writes the raw key here; gcm_init expands it, then zeroes 256 bytes
export const GCM_CTX_RK = 320; // bitsliced round keys (1920 bytes)
export const GCM_CTX_H = 2240; // GHASH key: H^1..H^4 in multiply-ready parts (768 bytes)
export const GCM_CTX_T = 3072; // GHASH 16-lane swizzle tables for H (8192 bytes)
export const GCM_CTX_W = 11264; // CTR round-1 planes for counter starts 1, 2, 9, 10, ..., 241, 242 (62 x 128 bytes)
export const GCM_CTX_T16 = 19200; // GHASH 16-lane swizzle tables for H^16: one long message, 16 blocks apart (8192 bytes)
// Per-thread scratch every batch call takes (the caller owns it; never shared between threads).
export const GCM_SCRATCH_SIZE = 2816;
export const GCM_SC_Y = 0; // 16-lane GHASH state, transposed (256 bytes)
export const GCM_SC_X = 256; // 16 input blocks, one per message (256 bytes)
export const GCM_SC_TMP = 512; // ghash16_absorb scratch (768 bytes)
export const GCM_SC_EJ0 = 1280; // E(K, J0) of 16 messages (256 bytes)
export const GCM_SC_ROWS = 1536; // 16 GHASH results, one row per message (256 bytes)
export const GCM_SC_ORDER = 1792; // a window's descriptor indices sorted by length (GCM_WINDOW u32s)
export const GCM_SC_LIST = 2048; // the 16 descriptor addresses of the current group (64 bytes)
export const GCM_SC_SN = 2368; // one message's sliced round-1 counter state (128 bytes)
export const GCM_SC_RPTR = 2496; // 16 GHASH row addresses for one step of a group (64 bytes)
export const GCM_SC_PARAMS = 2560; // per message of a group: text, first text round, full blocks (16 x 16 bytes)
export const GCM_WINDOW = 64; // descriptors sorted together when forming groups of 16
// A GCM batch is an array of GCMD_SIZE-byte descriptors, one per message, all under one key.
// Seal encrypts the text in place and writes the tag; open checks the tag over AAD and ciphertext
// and decrypts in place, or on failure zeroes the text (no plaintext is left behind).
export const GCMD_SIZE = 32;
export const GCMD_TEXT = 0; // u32: address of the plaintext/ciphertext (transformed in place)
export const GCMD_TEXT_LEN = 4; // u32: its length in bytes
export const GCMD_AAD = 8; // u32: address of the additional authenticated data (ESP: SPI + sequence)
export const GCMD_AAD_LEN = 12; // u32: its length (0 allowed)
export const GCMD_NONCE = 16; // u32: address of the 12-byte nonce
export const GCMD_TAG = 20; // u32: address of the tag (seal writes it, open reads it)
export const GCMD_TAG_LEN = 24; // u32: 16, 12 or 8
export const GCMD_STATUS = 28; // u32 out: GCM_OK or GCM_ERR_*
export const GCM_OK = 0;
export const GCM_ERR_AUTH = 1; // open: tag mismatch (text zeroed)
export const GCM_ERR_TAG_LEN = 2; // tag length not 16, 12 or 8 (nothing touched)
export const GCM_ERR_KEY_LEN = 3; // gcm_init: key not 16 or 32 bytes

// ---- ESP (RFC 4303 transport mode, AES-GCM per RFC 4106; assembly/esp.ts, src/crypto/esp.ts) ---
// Wire: SPI (4) | sequence (4) | IV (8) | ciphertext(payload | pad 1,2,3.. | pad length | next
// header) | ICV (8/12/16). AAD = SPI + 32-bit sequence, or with ESN SPI + 64-bit sequence (the
// high half is never sent; the receiver infers it). Nonce = salt (4) || IV (8).
export const ESP_HLEN = 8; // SPI + sequence number
export const ESP_IV_LEN = 8;
export const ESP_PUSH = 16; // bytes seal pushes in front of the payload (header + IV)
export const ESP_SALT_LEN = 4;
export const ESP_MAX_OVERHEAD = 37; // 16 + 3 pad + 2 trailer + 16 ICV (8-byte ICV: 29)
export const ESP_REPLAY_WINDOW = 1024; // sequence numbers [T - 1023, T] are in the window (power of two)
export const ESP_UDP_PORT = 4500; // RFC 3948 UDP encapsulation
export const ESP_CHUNK = 256; // descriptors staged per inner pass (batches of any size are chunked)
export const ESP_F_BY_SA = 1; // seal: DESC_ARG is an SA index (default: a peer index mapped by esp_bind)
export const ESP_F_PULL_UDP = 2; // open: also check the inner UDP header (dport 4789) and pull it
export const ESP_F_PUSH_UDP = 4; // seal: the payload is VXLAN; push its UDP header (ports 4789, checksum 0) first
export const ESP_F_STAGE = 8; // seal (n <= ESP_CHUNK): stage only; GCM runs later via esp_gcm_staged (split across threads)
// ESP context (ESPX_SIZE bytes, u32 fields): config written by the host, then esp_setup carves tables.
export const ESPX_SIZE = 128;
export const ESPX_MAX_SAS = 0; // config: SA slots
export const ESPX_MAX_PEERS = 4; // config: entries of the peer -> outbound SA map
export const ESPX_SAS = 8; // ptr: SA slots (ESP_SA_SIZE each)
export const ESPX_HASH = 12; // ptr: u32 slots holding inbound SA index + 1, keyed by SPI
export const ESPX_HASH_MASK = 16;
export const ESPX_HASH_SHIFT = 20;
export const ESPX_TXMAP = 24; // ptr: u32 per peer: outbound SA index or NO_INDEX
export const ESPX_CNT = 28; // ptr: ESP counter block (ESP_CNT_SIZE)
export const ESPX_GCMD = 32; // ptr: ESP_CHUNK GCM descriptors
export const ESPX_NONCES = 36; // ptr: ESP_CHUNK records of ESP_REC_SIZE (nonce, full sequence, ESN AAD)
export const ESPX_KEYS = 40; // ptr: ESP_CHUNK u32 GCM key contexts, parallel to the GCM descriptors
export const ESPX_IDX = 44; // ptr: ESP_CHUNK u32 descriptor indexes, parallel to the GCM descriptors
export const ESPX_SCRATCH = 48; // ptr: GCM_SCRATCH_SIZE (the ESP context is single-thread, like a datapath)
export const ESPX_STAGE = 52; // ptr: one ESP_SA_HDR-byte record the host fills for esp_sa_add
export const ESPX_MEM_BYTES = 56; // bytes esp_setup allocated
// SA slot (ESP_SA_SIZE bytes): header fields then the replay bitmap (inbound).
export const ESP_SA_SIZE = 256;
export const ESP_SA_HDR = 96; // bytes the host stages for esp_sa_add (the bitmap starts zeroed)
export const SA_SPI = 0; // u32 host order
export const SA_FLAGS = 4; // ESP_SA_F_*
export const SA_ICV = 8; // u32: 8, 12 or 16
export const SA_GCM = 12; // u32: GCM key context (GCM_CTX_*), shared by SAs with the same key
export const SA_SALT = 16; // 4 raw bytes
export const SA_IVCTR = 20; // u32 ptr: u64 IV counter shared by every SA with this key and salt
export const SA_SEQ = 24; // u64: outbound: last sequence sent; inbound: highest authenticated (T)
export const SA_PACKETS = 32; // u64: sealed / opened
export const SA_BYTES = 40; // u64: payload bytes of those
export const SA_AUTH_FAIL = 48; // u64 (inbound)
export const SA_REPLAY = 56; // u64 (inbound)
export const SA_WINDOW = 96; // ESP_REPLAY_WINDOW bits (128 bytes)
export const ESP_SA_F_USED = 1;
export const ESP_SA_F_OUT = 2;
export const ESP_SA_F_ESN = 4; // 64-bit extended sequence numbers (RFC 4303 2.2.1; AAD = SPI + 64-bit seq, RFC 4106 5)
// Per-packet staging record of a batch (ESPX_NONCES).
export const ESP_REC_SIZE = 48;
export const ESP_REC_NONCE = 0; // salt || IV (12)
export const ESP_REC_SEQ = 16; // u64: the full (inferred, with ESN) sequence number
export const ESP_REC_AAD = 32; // ESN: SPI | seq high | seq low (12)
// ESP counter block (u64 each).
export const ESP_CNT_SEALED = 0;
export const ESP_CNT_SEALED_BYTES = 8;
export const ESP_CNT_OPENED = 16;
export const ESP_CNT_OPENED_BYTES = 24;
export const ESP_CNT_DROPS = 32; // + 8 * DROP_* reason
export const ESP_CNT_SIZE = 224; // 32 + 8 * DROP_REASONS
// esp_sa_add / esp_bind statuses (returned negated by esp_sa_add).
export const ST_SPI_EXISTS = 14;
export const ST_SA_TABLE_FULL = 15;
export const ST_INVALID_SA = 16;
