// The CLI's client of the daemon API: HTTP/JSON over the daemon's Unix socket.
//
// Owns: finding the daemon (`-H unix:///path`, else VXNET_HOST, else /run/vxnet/vxnet.sock, as
// docker's -H / DOCKER_HOST) and turning an error response back into the VxError the daemon
// raised, so the CLI prints the same code the API returned.

import { request } from 'node:http';
import { VxError, type VxErrorCode } from '../errors.js';

export const DEFAULT_SOCKET = '/run/vxnet/vxnet.sock';

/** The socket path of `-H` / VXNET_HOST: `unix:///path` or an absolute path. */
export function resolveHost(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const h = flag ?? env.VXNET_HOST ?? `unix://${DEFAULT_SOCKET}`;
  if (h.startsWith('unix://') && h.length > 'unix://'.length) return h.slice('unix://'.length);
  if (h.startsWith('/')) return h;
  throw new VxError('ERR_BAD_HOST', `-H "${h}" must be unix:///path/to/vxnet.sock`);
}

export interface Response {
  status: number;
  body: string;
}

export class Client {
  constructor(readonly socket: string) {}

  raw(method: string, path: string, body?: unknown): Promise<Response> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socket,
          path,
          method,
          headers:
            payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
          reject(
            new VxError(
              'ERR_DAEMON_UNREACHABLE',
              `cannot connect to the vxnet daemon at unix://${this.socket}: is it running?`,
            ),
          );
        else reject(new VxError('ERR_DAEMON_UNREACHABLE', `talking to unix://${this.socket}: ${e.message}`));
      });
      req.end(payload);
    });
  }

  /** Calls the API; resolves the parsed JSON (or text), rejects with the daemon's VxError. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.raw(method, path, body);
    if (r.status >= 200 && r.status < 300) {
      if (r.body === '') return undefined as T;
      try {
        return JSON.parse(r.body) as T;
      } catch {
        return r.body as T;
      }
    }
    let err: { code?: string; message?: string } = {};
    try {
      err = JSON.parse(r.body);
    } catch {
      // Not JSON: report the status.
    }
    const code = (err.code?.startsWith('ERR_') ? err.code : 'ERR_DAEMON') as VxErrorCode;
    throw new VxError(code, err.message ?? `daemon answered ${r.status}`);
  }
}
