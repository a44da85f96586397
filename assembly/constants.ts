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
