// DNS messages (RFC 1035, EDNS0 OPT of RFC 6891): parse and build, for the embedded resolver.
//
// Owns: the wire format only. Parsing is bounds-checked everywhere and treats input as hostile:
// every read is checked against the buffer, a compression pointer must point strictly backwards
// (so pointer chains always end), names are capped at 255 bytes and labels at 63. Anything else
// is ERR_DNS_MALFORMED, never an exception of another kind and never an out-of-bounds read.
// Names are text: labels joined by '.', lower-cased by callers that compare them; a label byte
// that is not printable ASCII, or is '.' or '\', is written as \DDD (decimal), as in zone files,
// so any label round-trips.

import { VxError } from '../errors.js';

export const TYPE_A = 1;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

export const HEADER_BYTES = 12;
/** The largest UDP answer to a client that did not offer more with EDNS0 (RFC 1035 4.2.1). */
export const CLASSIC_UDP_BYTES = 512;

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface ResourceRecord {
  name: string;
  type: number;
  /** For OPT: the sender's UDP payload size. */
  class: number;
  ttl: number;
  data: Uint8Array;
}

export interface Message {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  rcode: number;
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

function malformed(why: string): VxError {
  return new VxError('ERR_DNS_MALFORMED', `malformed DNS message: ${why}`);
}

// ---- parse --------------------------------------------------------------------------------------

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length)
      throw malformed(`${what} runs past the end (${this.buf.length} bytes)`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.u16(what) * 65536 + this.u16(what);
    return v;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  name(): string {
    const labels: string[] = [];
    let wire = 0;
    let at = this.pos;
    let jumped = false;
    let floor = this.buf.length;
    for (;;) {
      if (at >= this.buf.length) throw malformed('a name runs past the end');
      const len = this.buf[at]!;
      if ((len & 0xc0) === 0xc0) {
        if (at + 1 >= this.buf.length) throw malformed('a compression pointer runs past the end');
        const target = ((len & 0x3f) << 8) | this.buf[at + 1]!;
        // Each jump lands strictly before the previous one, so a chain of pointers always ends
        // (and the 255-byte cap ends any loop through labels).
        if (target >= Math.min(at, floor))
          throw malformed(`a compression pointer at ${at} does not point backwards`);
        floor = target;
        if (!jumped) this.pos = at + 2;
        jumped = true;
        at = target;
        continue;
      }
      if (len & 0xc0) throw malformed(`label type 0x${(len & 0xc0).toString(16)} is not supported`);
      if (len === 0) {
        if (!jumped) this.pos = at + 1;
        break;
      }
      wire += len + 1;
      if (wire > 254) throw malformed('a name is longer than 255 bytes');
      if (at + 1 + len > this.buf.length) throw malformed('a label runs past the end');
      labels.push(labelText(this.buf.subarray(at + 1, at + 1 + len)));
      at += 1 + len;
    }
    return labels.join('.');
  }
}

function labelText(b: Uint8Array): string {
  let s = '';
  for (const c of b) {
    if (c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c) s += String.fromCharCode(c);
    else s += `\\${c.toString().padStart(3, '0')}`;
  }
  return s;
}

function record(r: Reader, what: string): ResourceRecord {
  const name = r.name();
  const type = r.u16(what);
  const klass = r.u16(what);
  const ttl = r.u32(what);
  const len = r.u16(what);
  return { name, type, class: klass, ttl, data: r.bytes(len, `${what} data`) };
}

/** Parses a whole message; throws ERR_DNS_MALFORMED on anything that does not fit. */
export function parseMessage(buf: Uint8Array): Message {
  if (!(buf instanceof Uint8Array)) throw malformed('not a byte array');
  if (buf.length < HEADER_BYTES) throw malformed(`${buf.length} bytes is shorter than the header`);
  const r = new Reader(buf);
  const id = r.u16('id');
  const flags = r.u16('flags');
  const counts = [r.u16('qdcount'), r.u16('ancount'), r.u16('nscount'), r.u16('arcount')];
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]!; i++) {
    const name = r.name();
    questions.push({ name, type: r.u16('qtype'), class: r.u16('qclass') });
  }
  const section = (n: number, what: string) => {
    const out: ResourceRecord[] = [];
    for (let i = 0; i < n; i++) out.push(record(r, what));
    return out;
  };
  const answers = section(counts[1]!, 'answer');
  const authorities = section(counts[2]!, 'authority');
  const additionals = section(counts[3]!, 'additional');
  if (r.pos !== buf.length) throw malformed(`${buf.length - r.pos} bytes after the last record`);
  return {
    id,
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    ra: (flags & 0x0080) !== 0,
    rcode: flags & 0xf,
    questions,
    answers,
    authorities,
    additionals,
  };
}

/** The header fields readable from any datagram of at least 12 bytes (to answer FORMERR). */
export function peekHeader(buf: Uint8Array): { id: number; qr: boolean; opcode: number } | undefined {
  if (buf.length < HEADER_BYTES) return undefined;
  return { id: (buf[0]! << 8) | buf[1]!, qr: (buf[2]! & 0x80) !== 0, opcode: (buf[2]! >> 3) & 0xf };
}

// ---- build --------------------------------------------------------------------------------------

/** Encodes a name (text as parseMessage writes it) to wire labels; ERR_DNS_BAD_NAME if it cannot be. */
export function encodeName(name: string): Buffer {
  if (typeof name !== 'string') throw new VxError('ERR_DNS_BAD_NAME', 'a DNS name must be a string');
  const text = name.endsWith('.') && !name.endsWith('\\.') ? name.slice(0, -1) : name;
  const out: number[] = [];
  let label: number[] = [];
  const end = () => {
    if (label.length === 0 || label.length > 63)
      throw new VxError('ERR_DNS_BAD_NAME', `"${name}": labels must be 1 to 63 bytes`);
    out.push(label.length, ...label);
    label = [];
  };
  if (text.length > 0) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x2e) end();
      else if (c === 0x5c) {
        const m = /^\d{3}/.exec(text.slice(i + 1));
        if (m && Number(m[0]) < 256) {
          label.push(Number(m[0]));
          i += 3;
        } else if (i + 1 < text.length) label.push(text.charCodeAt(++i) & 0xff);
        else throw new VxError('ERR_DNS_BAD_NAME', `"${name}": a trailing backslash`);
      } else if (c > 0x7f) throw new VxError('ERR_DNS_BAD_NAME', `"${name}": not ASCII (use punycode)`);
      else label.push(c);
    }
    end();
  }
  out.push(0);
  if (out.length > 255) throw new VxError('ERR_DNS_BAD_NAME', `"${name}": longer than 255 bytes`);
  return Buffer.from(out);
}

export interface BuildOptions {
  /** Truncate (dropping whole records, setting TC) to fit this many bytes. */
  maxBytes?: number;
}

/**
 * Builds a message. Record names equal to the first question's name are written as a pointer to
 * it (offset 12), which is all the compression a resolver's answers need.
 */
export function buildMessage(m: Partial<Message> & { id: number }, options: BuildOptions = {}): Buffer {
  const questions = m.questions ?? [];
  const parts: Buffer[] = [];
  const header = Buffer.alloc(HEADER_BYTES);
  parts.push(header);
  const qname = questions[0]?.name.toLowerCase();
  for (const q of questions) {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(q.type, 0);
    tail.writeUInt16BE(q.class, 2);
    parts.push(encodeName(q.name), tail);
  }
  let size = parts.reduce((n, p) => n + p.length, 0);
  const max = options.maxBytes ?? 65535;
  let tc = m.tc ?? false;
  const counts = [questions.length, 0, 0, 0];
  // OPT goes last and is kept even when answers are dropped, so reserve room for it first.
  const sections = [m.answers ?? [], m.authorities ?? [], m.additionals ?? []];
  const optBytes = sections[2]!
    .filter((r) => r.type === TYPE_OPT)
    .reduce((n, r) => n + 11 + r.data.length, 0);
  sections.forEach((records, s) => {
    for (const rr of records) {
      if (s === 2 && rr.type === TYPE_OPT) continue;
      const enc = encodeRecord(rr, qname);
      if (size + enc.length + optBytes > max) {
        tc = true;
        continue;
      }
      parts.push(enc);
      size += enc.length;
      counts[s + 1]!++;
    }
  });
  for (const rr of sections[2]!) {
    if (rr.type !== TYPE_OPT) continue;
    parts.push(encodeRecord(rr, qname));
    counts[3]!++;
  }
  const flags =
    (m.qr ? 0x8000 : 0) |
    (((m.opcode ?? 0) & 0xf) << 11) |
    (m.aa ? 0x0400 : 0) |
    (tc ? 0x0200 : 0) |
    (m.rd ? 0x0100 : 0) |
    (m.ra ? 0x0080 : 0) |
    ((m.rcode ?? 0) & 0xf);
  header.writeUInt16BE(m.id & 0xffff, 0);
  header.writeUInt16BE(flags, 2);
  for (let i = 0; i < 4; i++) header.writeUInt16BE(counts[i]!, 4 + 2 * i);
  return Buffer.concat(parts);
}

function encodeRecord(rr: ResourceRecord, qname: string | undefined): Buffer {
  const name =
    qname !== undefined && rr.name.toLowerCase() === qname ? Buffer.from([0xc0, 12]) : encodeName(rr.name);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(rr.type, 0);
  fixed.writeUInt16BE(rr.class, 2);
  fixed.writeUInt32BE(rr.ttl >>> 0, 4);
  fixed.writeUInt16BE(rr.data.length, 8);
  return Buffer.concat([name, fixed, rr.data]);
}

/** The A record data for a dotted-quad IPv4 address (ERR_DNS_BAD_NAME names a bad one). */
export function ipv4Data(ip: string): Uint8Array {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  const bytes = m?.slice(1).map(Number);
  if (!bytes || bytes.some((b) => b > 255))
    throw new VxError('ERR_DNS_BAD_NAME', `"${ip}" is not an IPv4 address for an A record`);
  return Uint8Array.from(bytes);
}
